package audit

import (
	"context"
	"errors"
	"sync"
)

// Writer appends events from many requests in shared transactions (group commit): a request hands
// its events over and waits until they are committed, so a read is answered only once its
// AuditEvent is durable, and a killed server loses none it answered. What arrives while a batch
// commits goes into the next one, so under load one commit carries many events. A batch is one
// round trip: its hashes are computed from the head the previous batch left (cached), and it
// appends only if the chain still ends there; otherwise (a write transaction or another process
// appended) it reads the head and is redone.
//
// Pipelining batches (sending the next before the previous commits) was tried and dropped: batches
// on different connections reach PostgreSQL out of order, and every overtaking batch is redone.
type Writer struct {
	trail      *Trail
	syncCommit bool
	head       head // where the last batch left the chain (only run touches it)
	maxBatch   int
	reqs       chan *pending
	stop       chan struct{}
	done       chan struct{}
	once       sync.Once
}

type pending struct {
	evs []*Event
	err chan error
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: the trail writer is closed")

// NewWriter starts a writer; Close stops it.
//
// With syncCommit, a batch's COMMIT waits for its WAL to reach the disk (PostgreSQL's
// synchronous_commit): the events survive a crash of PostgreSQL or of the machine. Without it, the
// COMMIT returns as soon as the batch is committed in PostgreSQL, and the WAL is flushed by
// PostgreSQL's WAL writer within 3 x wal_writer_delay (0.6 s by default): the events survive any
// crash of Billy (the request is answered only after the COMMIT), and a crash of PostgreSQL itself
// may lose the events of that last fraction of a second. The chain stays intact either way (a lost
// batch never happened, for the chain too).
func (t *Trail) NewWriter(syncCommit bool) *Writer {
	w := &Writer{trail: t, syncCommit: syncCommit, maxBatch: 256, reqs: make(chan *pending, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Record appends evs and returns once they are committed. It does not give up when ctx is
// cancelled (a client that hangs up has still been answered, or is about to be).
func (w *Writer) Record(ctx context.Context, evs ...*Event) error {
	if len(evs) == 0 {
		return nil
	}
	p := &pending{evs: evs, err: make(chan error, 1)}
	select {
	case <-w.stop:
		return ErrClosed
	default:
	}
	select {
	case w.reqs <- p:
	case <-w.stop:
		return ErrClosed
	}
	select {
	case err := <-p.err:
		return err
	case <-w.done:
		select {
		case err := <-p.err:
			return err
		default:
			return ErrClosed
		}
	}
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case p := <-w.reqs:
			w.flush(p)
		case <-w.stop:
			for {
				select {
				case p := <-w.reqs:
					w.flush(p)
				default:
					return
				}
			}
		}
	}
}

// flush commits p and whatever else is waiting, in one transaction.
func (w *Writer) flush(first *pending) {
	batch := []*pending{first}
	n := len(first.evs)
more:
	for n < w.maxBatch {
		select {
		case p := <-w.reqs:
			batch = append(batch, p)
			n += len(p.evs)
		default:
			break more
		}
	}
	evs := make([]*Event, 0, n)
	for _, p := range batch {
		evs = append(evs, p.evs...)
	}
	err := w.trail.appendAt(context.Background(), &w.head, w.syncCommit, evs)
	for _, p := range batch {
		p.err <- err
	}
}

// Close commits what is waiting and stops the writer.
func (w *Writer) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// Log is the trail with its batched writer: Append in a write's transaction, Record (batched, and
// durable on return) for everything else, and the trail's searches.
type Log struct {
	*Trail
	W *Writer
}

// Record hands evs to the batched writer and returns once they are committed.
func (l Log) Record(ctx context.Context, evs ...*Event) error { return l.W.Record(ctx, evs...) }
