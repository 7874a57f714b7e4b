package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// bindOn starts an LDAP connection on raw and binds; url is for errors.
func bindOn(raw net.Conn, isTLS bool, url, bindDN, password string) (*ldap.Conn, error) {
	c := ldap.NewConn(raw, isTLS)
	c.Start()
	c.SetTimeout(time.Minute)
	if err := c.Bind(bindDN, password); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("harness: bind to %s as %s: %w", url, bindDN, err)
	}
	return c, nil
}

// sharedConn returns *conn, dialling a new one if it is missing or broke.
func sharedConn(mu *sync.Mutex, conn **ldap.Conn, dial func(context.Context) (*ldap.Conn, error)) (*ldap.Conn, error) {
	mu.Lock()
	defer mu.Unlock()
	if *conn != nil && !(*conn).IsClosing() {
		return *conn, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	*conn = c
	return c, nil
}

// The seeding helpers of Samba and Slapd share these: each server hands
// over its shared admin connection.

func addEntry(admin func() (*ldap.Conn, error), req *ldap.AddRequest) error {
	c, err := admin()
	if err != nil {
		return err
	}
	if err := c.Add(req); err != nil {
		return fmt.Errorf("harness: add %s: %w", req.DN, err)
	}
	return nil
}

func modifyEntry(admin func() (*ldap.Conn, error), req *ldap.ModifyRequest) error {
	c, err := admin()
	if err != nil {
		return err
	}
	if err := c.Modify(req); err != nil {
		return fmt.Errorf("harness: modify %s: %w", req.DN, err)
	}
	return nil
}

// pipelineDepth is how many requests are in flight on the one connection:
// enough to keep the server busy while responses travel back.
const pipelineDepth = 8

// pipeline runs op(0..n-1) with pipelineDepth requests in flight on the
// admin connection (go-ldap multiplexes concurrent requests on one
// connection by message ID). Every op runs; the error joins the failures.
func pipeline(admin func() (*ldap.Conn, error), n int, op func(c *ldap.Conn, i int) error) error {
	c, err := admin()
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(pipelineDepth, n) {
		wg.Go(func() {
			for i := range next {
				if err := op(c, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("… and %d more failures", len(errs)-10))
	}
	return errors.Join(errs...)
}

func deleteEntry(admin func() (*ldap.Conn, error), dn string) error {
	c, err := admin()
	if err != nil {
		return err
	}
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		return fmt.Errorf("harness: delete %s: %w", dn, err)
	}
	return nil
}

func renameEntry(admin func() (*ldap.Conn, error), dn, newRDN, newParentDN string) error {
	c, err := admin()
	if err != nil {
		return err
	}
	if err := c.ModifyDN(ldap.NewModifyDNRequest(dn, newRDN, true, newParentDN)); err != nil {
		return fmt.Errorf("harness: rename %s to %s under %q: %w", dn, newRDN, newParentDN, err)
	}
	return nil
}

// startServer starts spec and waits until a connection from conn works;
// on failure the process is stopped with stopSig (nil: the spec's own way).
func startServer(ctx context.Context, spec processSpec, conn func(context.Context) (*ldap.Conn, error), stopSig os.Signal) (*process, error) {
	p, err := spec.start()
	if err != nil {
		return nil, err
	}
	err = p.waitReady(ctx, func(ctx context.Context) error {
		c, err := conn(ctx)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		p.stop(stopSig, 5*time.Second)
		return nil, err
	}
	return p, nil
}
