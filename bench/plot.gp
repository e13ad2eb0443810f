# The plots of `make bench`: every measured figure as how far it is from its goal (>= 1 meets it), on a log
# scale, and the C-node's RSS by connections held. Input: <dir>/tmp/plot.dat and <dir>/tmp/rss.dat (written
# by bench/dpool_bench.erl); output: <dir>/latest.png and <dir>/latest_rss.png, where dir is given as
# `gnuplot -e "dir='...'"` (scripts/bench.sh: _build/bench/results).
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

# The second plot: the C-node's RSS on the way to 10,000 idle connections (scale), from <dir>/tmp/rss.dat
# (connections, kB), when that phase ran; output <dir>/latest_rss.png.
rss = dir.'/tmp/rss.dat'
if (system("test -s ".rss." && echo 1 || echo 0") + 0) {
    reset
    set terminal pngcairo size 700,420 font ",10"
    set output dir.'/latest_rss.png'
    set title noenhanced "distribute_pool: C-node RSS by idle connections held (make bench, scale)"
    set xlabel "idle connections (500 per target)"
    set ylabel "C-node VmRSS (MiB)"
    set grid
    set key off
    set xrange [0:*]
    set yrange [0:*]
    set offsets 0, graph 0.1, graph 0.1, 0
    plot rss using 1:($2/1024) with linespoints lw 2 pt 7 lc rgb "0x2e8b57", \
         rss using 1:($2/1024):(sprintf("%.1f MiB", $2/1024)) with labels offset 0,1
}
