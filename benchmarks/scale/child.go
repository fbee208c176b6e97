package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// child is a process the driver started: this binary again, in a role.
// It talks over lines: the driver writes to its standard input, reads its
// standard output; its standard error goes to the driver's.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // closed at the child's end of output
}

func startChild(role string, args []string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startChildExe(exe, role, args)
}

// startChildExe starts the program exe in role: this binary, or one built
// from another revision (DriverConfig.Servers).
func startChildExe(exe, role string, args []string) (*child, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	ch := &child{role: role, cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
	go func() {
		defer close(ch.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
	}()
	return ch, nil
}

// expect waits for a line starting with prefix and a space and returns the
// rest.
func (ch *child) expect(ctx context.Context, prefix string) (string, error) {
	for {
		select {
		case s, ok := <-ch.lines:
			if !ok {
				return "", fmt.Errorf("%s exited before %q", ch.role, prefix)
			}
			if rest, ok := strings.CutPrefix(s, prefix+" "); ok {
				return rest, nil
			}
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for %q: %w", ch.role, prefix, ctx.Err())
		}
	}
}

// send writes one line to the child's standard input.
func (ch *child) send(line string) error {
	_, err := io.WriteString(ch.stdin, line+"\n")
	return err
}

// stop closes the child's standard input, which ends it, and waits for it;
// after grace it kills it (only this process, by its handle).
func (ch *child) stop(grace time.Duration) error {
	_ = ch.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	var killed bool
	for open := true; open; {
		select {
		case _, open = <-ch.lines:
		case <-t.C:
			if !killed {
				killed = true
				_ = ch.cmd.Process.Kill()
			}
		}
	}
	err := ch.cmd.Wait()
	if killed {
		return errors.Join(fmt.Errorf("%s did not stop within %v: killed", ch.role, grace), err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ch.role, err)
	}
	return nil
}

// stopAll stops the children at once and waits for them all.
func stopAll(chs []*child) error {
	errs := make([]error, len(chs))
	var wg sync.WaitGroup
	for i, ch := range chs {
		wg.Go(func() { errs[i] = ch.stop(2 * ioTimeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
