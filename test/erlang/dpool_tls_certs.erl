%% Test-only: certificates for TLS distribution (inet_tls_dist), made with the openssl CLI into a folder at
%% test time, and the ssl_dist_optfile files and peer arguments of nodes that use them.
%%
%% Two CAs, a and b, and three node certificates, each with its own key:
%% - a: signed by CA a for 127.0.0.1 (SAN IP:127.0.0.1 and DNS:127.0.0.1: inet_tls_dist checks the host part
%%   of a node name as a DNS name, see /work/shared/notes/tls-dist.md);
%% - b: signed by CA b for 127.0.0.1;
%% - wrong_host: signed by CA a for 127.0.0.2 only, so a verifying client that connects to 127.0.0.1 refuses it.
%% Each node certificate has an optfile per mode: verified (verify_peer against the CA that signed it, and
%% fail_if_no_peer_cert on the server side) and unverified (verify_none on both sides). Node certificate a
%% also comes with its key encrypted under ?PASSWORD, with optfiles {a_password, Mode} that give the password.
-module(dpool_tls_certs).

-export([generate/1]).
-export([password/0]).
-export([peer_args/1]).
-export([code_path_args/0]).
-export([start_peer/3]).
-export([write_optfile/2]).

-export_type([certs/0]).
-export_type([node_cert/0]).
-export_type([mode/0]).

-type mode() :: verified | unverified.
-type node_cert() :: #{certfile := file:filename(), keyfile := file:filename(), cacertfile := file:filename(),
                       password => string()}.
%% ca: each CA's certificate; node: each node certificate, with its key and its CA's certificate;
%% optfile: an ssl_dist_optfile per {node certificate, mode}. All paths absolute.
-type certs() :: #{dir := file:filename(),
                   ca := #{a | b := file:filename()},
                   node := #{a | b | wrong_host | a_password := node_cert()},
                   optfile := #{{a | b | wrong_host | a_password, mode()} := file:filename()}}.

-define(PASSWORD, "dpool t3st pass").
-define(DAYS, "2").

%% Makes the CAs, certificates and optfiles in Dir/tls (created); fails (error) with openssl's output when
%% a command does not succeed.
-spec generate(file:filename()) -> certs().
generate(Dir0) ->
    Dir = filename:join(filename:absname(Dir0), "tls"),
    ok = filelib:ensure_path(Dir),
    CaA = ca(Dir, "ca_a"),
    CaB = ca(Dir, "ca_b"),
    NodeA = node_cert(Dir, "node_a", CaA, "127.0.0.1"),
    Nodes = #{a => NodeA,
              b => node_cert(Dir, "node_b", CaB, "127.0.0.1"),
              wrong_host => node_cert(Dir, "node_wrong_host", CaA, "127.0.0.2"),
              a_password => encrypted(Dir, NodeA)},
    Optfiles = maps:from_list([{{Name, Mode}, write_optfile(Dir, Name, Mode, Cert)}
                               || {Name, Cert} <- maps:to_list(Nodes), Mode <- [verified, unverified]]),
    #{dir => Dir, ca => #{a => cert_path(CaA), b => cert_path(CaB)}, node => Nodes, optfile => Optfiles}.

%% The password of the encrypted key of node certificate a_password.
-spec password() -> string().
password() ->
    ?PASSWORD.

%% The arguments that make a node run TLS distribution with Optfile.
-spec peer_args(file:filename()) -> [string()].
peer_args(Optfile) ->
    ["-proto_dist", "inet_tls", "-ssl_dist_optfile", Optfile].

%% -pa arguments for the library's ebin and the directory of these test modules (suites, fixtures), so that a
%% peer can start distribute_pool and run the suites' functions.
-spec code_path_args() -> [string()].
code_path_args() ->
    ["-pa", filename:dirname(code:which(distribute_pool)), "-pa", filename:dirname(code:which(?MODULE))].

%% Starts a peer on 127.0.0.1 (longnames, the test node's cookie, outside global's mesh) controlled over its
%% stdio, not over distribution: a TLS node and a plain one cannot talk, and the test node is plain.
%% Extra: more arguments (peer_args/1, code_path_args/0). Linked to the caller; stop it with peer:stop/1.
-spec start_peer(string(), [string()], [string()]) -> {pid(), node()}.
start_peer(Prefix, TlsArgs, Extra) ->
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(Prefix), host => "127.0.0.1",
                                         longnames => true, connection => standard_io,
                                         args => ["-setcookie", atom_to_list(erlang:get_cookie()),
                                                  "-connect_all", "false" | TlsArgs ++ Extra]}),
    {Peer, Node}.

%% Writes Terms as an ssl_dist_optfile at Path: one term, a list, as ssl_dist_sup reads it; gives Path.
-spec write_optfile(file:filename(), list()) -> file:filename().
write_optfile(Path, Terms) ->
    ok = file:write_file(Path, io_lib:format("~p.~n", [Terms])),
    Path.

%% The optfile of a node certificate for Mode, in Dir.
-spec write_optfile(file:filename(), atom(), mode(), node_cert()) -> file:filename().
write_optfile(Dir, Name, Mode, Cert) ->
    write_optfile(filename:join(Dir, atom_to_list(Name) ++ "_" ++ atom_to_list(Mode) ++ ".conf"),
                  optfile_terms(Mode, Cert)).

-spec optfile_terms(mode(), node_cert()) -> list().
optfile_terms(Mode, #{certfile := Cert, keyfile := Key, cacertfile := Ca} = NodeCert) ->
    Files = [{certfile, Cert}, {keyfile, Key}, {cacertfile, Ca}]
        ++ [{password, P} || P <- [maps:get(password, NodeCert, none)], P =/= none],
    {Server, Client} = case Mode of
                           verified -> {[{verify, verify_peer}, {fail_if_no_peer_cert, true}],
                                        [{verify, verify_peer}]};
                           unverified -> {[{verify, verify_none}], [{verify, verify_none}]}
                       end,
    [{server, Files ++ Server}, {client, Files ++ Client}].

%% A self-signed CA: {Certificate, Key}.
-spec ca(file:filename(), string()) -> {file:filename(), file:filename()}.
ca(Dir, Name) ->
    Cert = filename:join(Dir, Name ++ ".pem"),
    Key = filename:join(Dir, Name ++ ".key"),
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", Key, "-out", Cert, "-days", ?DAYS,
             "-subj", "/CN=dpool-test-" ++ Name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    {Cert, Key}.

-spec cert_path({file:filename(), file:filename()}) -> file:filename().
cert_path({Cert, _Key}) ->
    Cert.

%% A key and a certificate for Host (an IP address, also given as a DNS name), signed by Ca.
-spec node_cert(file:filename(), string(), {file:filename(), file:filename()}, string()) -> node_cert().
node_cert(Dir, Name, {CaCert, CaKey}, Host) ->
    Key = filename:join(Dir, Name ++ ".key"),
    Csr = filename:join(Dir, Name ++ ".csr"),
    Cert = filename:join(Dir, Name ++ ".pem"),
    Ext = filename:join(Dir, Name ++ ".ext"),
    ok = file:write_file(Ext, ["subjectAltName=IP:", Host, ",DNS:", Host, "\n",
                               "basicConstraints=CA:FALSE\n",
                               "keyUsage=critical,digitalSignature,keyEncipherment\n",
                               "extendedKeyUsage=serverAuth,clientAuth\n"]),
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", Key, "-out", Csr, "-subj", "/CN=" ++ Host]),
    openssl(["x509", "-req", "-in", Csr, "-CA", CaCert, "-CAkey", CaKey, "-CAcreateserial", "-out", Cert,
             "-days", ?DAYS, "-extfile", Ext]),
    #{certfile => Cert, keyfile => Key, cacertfile => CaCert}.

%% The same certificate with its key encrypted (PKCS#8, AES-256) under ?PASSWORD.
-spec encrypted(file:filename(), node_cert()) -> node_cert().
encrypted(Dir, #{keyfile := Key} = Cert) ->
    Encrypted = filename:join(Dir, "node_a_encrypted.key"),
    openssl(["pkey", "-in", Key, "-aes256", "-passout", "pass:" ++ ?PASSWORD, "-out", Encrypted]),
    Cert#{keyfile := Encrypted, password => ?PASSWORD}.

%% Runs openssl with Args (no shell); its output when it fails, in the error.
-spec openssl([string()]) -> ok.
openssl(Args) ->
    Exe = case os:find_executable("openssl") of
              false -> error({openssl_not_found, "install the openssl command-line tool"});
              Path -> Path
          end,
    Port = open_port({spawn_executable, Exe}, [{args, Args}, binary, exit_status, use_stdio, stderr_to_stdout,
                                               hide]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    case collect(Port, OsPid, []) of
        {0, _Output} -> ok;
        {Status, Output} -> error({openssl_failed, Status, Args, Output})
    end.

-spec collect(port(), non_neg_integer(), [binary()]) -> {non_neg_integer(), binary()}.
collect(Port, OsPid, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, OsPid, [Data | Acc]);
        {Port, {exit_status, Status}} -> {Status, iolist_to_binary(lists:reverse(Acc))}
    after 60000 ->
        catch erlang:port_close(Port),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        error({openssl_timeout, iolist_to_binary(lists:reverse(Acc))})
    end.
