// The admission benchmark's load client (bench/peer_bench.py): standard library only.
module tftj.dev/testbin/hammer

go 1.26.0
