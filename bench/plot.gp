# The plot of `make bench`: every measured figure as how far it is from its goal (>= 1 meets it), on a log
# scale. Input: <dir>/tmp/plot.dat (written by bench/dpool_bench.erl); output: <dir>/latest.png, where dir is
# given as `gnuplot -e "dir='...'"` (scripts/bench.sh: _build/bench/results).
if (!exists("dir")) dir = '_build/bench/results'
set terminal pngcairo size 1000,520 font ",10"
set output dir.'/latest.png'
set title noenhanced "distribute_pool: make bench, each figure over its goal (>= 1 meets the goal; log scale)"
set logscale y
set yrange [0.001:1000]
set ylabel "score (goal-normalised: value/goal, or goal/value for upper bounds)"
set xtics rotate by -30 left noenhanced
set grid ytics
set key off
set style fill solid 0.8 border -1
set boxwidth 0.6
stats dir.'/tmp/plot.dat' using 2 nooutput
set xrange [-0.6:STATS_records - 0.4]
f(x) = x < 0.001 ? 0.001 : x
plot dir.'/tmp/plot.dat' using 0:(f($2)):($0-0.3):($0+0.3):(0.001):(f($2)):($3 > 0 ? 0x2e8b57 : 0xcd3333):xtic(1) \
       with boxxyerror lc rgb variable, \
     1 with lines lw 2 dt 2 lc rgb "black", \
     dir.'/tmp/plot.dat' using 0:(f($2)):(sprintf("%.3g", $2)) with labels offset 0,0.8
