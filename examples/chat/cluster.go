package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS runs an embedded NATS server on loopback, on a free port,
// with JetStream keeping its files in storeDir, or without JetStream when
// storeDir is "". It never listens beyond loopback: the nodes are in this
// process, and nodes started elsewhere with -nats must run on this
// machine.
func startNATS(storeDir string) (*natsserver.Server, error) {
	s, err := natsserver.NewServer(&natsserver.Options{
		Host:      "127.0.0.1",
		Port:      -1, // any free port
		NoLog:     true,
		NoSigs:    true, // the command handles SIGINT and SIGTERM
		JetStream: storeDir != "",
		StoreDir:  storeDir,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("embedded NATS did not start within 5s")
	}
	return s, nil
}

// startCluster starts an embedded NATS server and o.cluster nodes on
// consecutive ports from o.addr's, named node-1, node-2, ...; stop ends
// the NATS server after the nodes shut down.
func startCluster(o options, logger *slog.Logger) (nodes []*node, natsURL string, stop func(), err error) {
	addrs, err := nextAddrs(o.addr, o.cluster)
	if err != nil {
		return nil, "", nil, err
	}
	store := ""
	if o.history == historyJetStream {
		store = o.store
	}
	ns, err := startNATS(store)
	if err != nil {
		return nil, "", nil, err
	}
	stopNATS := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, n := range nodes {
				_ = n.shutdown(ctx)
			}
			stopNATS()
		}
	}()
	for i, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nodes, "", nil, err
		}
		name := fmt.Sprintf("node-%d", i+1)
		n, err := startNode(nodeConfig{
			Listener:   ln,
			TokenTTL:   o.tokenTTL,
			Name:       name,
			NATSURL:    ns.ClientURL(),
			Reflection: o.reflection,
			History:    o.history,
			Logger:     logger,
		})
		if err != nil {
			return nodes, "", nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, ns.ClientURL(), stopNATS, nil
}
