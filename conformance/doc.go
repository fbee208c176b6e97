// Package conformance is the protows conformance suite: test cases as
// data (cases/*.json), a runner that checks a server under test over a
// real socket, and a runner that checks a client under test against a
// scripted server through a small driver protocol. docs/CONFORMANCE.md is
// the guide for implementers; the command is
// conformance/cmd/protows-conformance.
//
//	suites, _ := conformance.Load()
//	rep := conformance.RunServer(ctx, suites, conformance.ServerTarget{
//		URLs: map[string]string{conformance.ProfileDefault: "ws://127.0.0.1:8080/ws"},
//	}, conformance.Options{Target: "my-server"})
//	_ = rep.WriteText(os.Stdout)
//
// The runner speaks WebSocket itself, byte by byte, so that cases can send
// what no library would and see every frame the peer sends.
package conformance
