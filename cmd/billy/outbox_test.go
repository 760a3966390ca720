package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
)

// The outbox tests share BILLY_TEST_REDIS_URL between databases, as two Billy databases on one
// Redis would; each test has a queue of its own, deleted at the end.

func sharedQueue(t *testing.T) (string, *asynq.Inspector) {
	t.Helper()
	ropt, err := asynq.ParseRedisURI(testRedisURL())
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("test-%s-%d", t.Name(), time.Now().UnixNano())
	insp := asynq.NewInspector(ropt)
	t.Cleanup(func() {
		_ = insp.DeleteQueue(queue, true)
		insp.Close()
	})
	return queue, insp
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// outboxRows lists the outbox rows of a database as "id task_type relayed done".
func outboxRows(t *testing.T, db *pgx.Conn) []string {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT concat_ws(' ', id, task_type, (relayed_at IS NOT NULL)::text, (done_at IS NOT NULL)::text) FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOutboxTwoDatabasesShareRedis is finding E1 of issue 10: a fresh database on the Redis database
// (and queue) of an earlier one enqueued its outbox row 1 as "outbox-1", which the earlier
// database's job still held: asynq refused it as a duplicate, the relay counted it relayed, and the
// run stayed requested forever.
func TestOutboxTwoDatabasesShareRedis(t *testing.T) {
	t.Parallel()
	wav := speech(t, script)
	stt := newSTTServer(t)
	queue, insp := sharedQueue(t)
	settings := []string{"BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_STT_URL", stt.URL, "BILLY_PIPELINE_QUEUE", queue,
		"BILLY_PIPELINE_REPLAY_AFTER", "2s"}
	env1, env2 := envMap(t, settings...), envMap(t, settings...)
	if env1["BILLY_DATABASE_URL"] == env2["BILLY_DATABASE_URL"] {
		t.Fatal("want two databases")
	}
	var media [2]string
	var clients [2]fhirClient
	for i, env := range []map[string]string{env1, env2} {
		clients[i] = fhirClient{t, startAppWith(t, lookuper(env), false)} // API and relay: the job waits in Redis
		patient, encounter := clients[i].patientAndEncounter()
		media[i] = clients[i].uploadAudio(wav, "audio/wav", patient, encounter)
		db := connect(t, env["BILLY_DATABASE_URL"])
		waitFor(t, "the outbox row to be relayed", func() bool {
			rows := outboxRows(t, db)
			return len(rows) == 1 && rows[0] == "1 pipeline:transcribe true false"
		})
	}
	// Both databases' row 1 is in the queue.
	if q, err := insp.GetQueueInfo(queue); err != nil || q.Pending != 2 {
		t.Fatalf("queue: %+v %v; want the two databases' jobs pending", q, err)
	}
	// The first database's worker runs first; it may take the second's job too, which it drops
	// (the run is not in its database) and the second database queues again.
	w1 := startProcess(t, "worker", env1)
	if task := clients[0].runOf("Media/"+media[0], "transcribe", time.Minute); task["status"] != "completed" {
		t.Fatalf("first database's run: %v", task)
	}
	_ = w1.Process.Kill()
	_ = w1.Wait()
	startProcess(t, "worker", env2)
	if task := clients[1].runOf("Media/"+media[1], "transcribe", time.Minute); task["status"] != "completed" {
		t.Fatalf("second database's run: %v", task)
	}
}

// TestStuckRequestedRunMoves is finding E1 of issue 10: a run whose stage ended without starting it
// stayed requested forever. Past BILLY_PIPELINE_REPLAY_AFTER it is queued again, and after
// maxDeliveries it fails with the reason.
func TestStuckRequestedRunMoves(t *testing.T) {
	t.Parallel()
	wav := speech(t, script)
	stt := newSTTServer(t)
	queue, insp := sharedQueue(t)
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_STT_URL", stt.URL, "BILLY_PIPELINE_QUEUE", queue,
		"BILLY_PIPELINE_REPLAY_AFTER", "2s")
	c := fhirClient{t, startAppWith(t, lookuper(env), false)} // API and relay, no worker yet
	patient, encounter := c.patientAndEncounter()
	retried := c.uploadAudio(wav, "audio/wav", patient, encounter)
	failing := c.uploadAudio(wav, "audio/wav", patient, encounter)
	db := connect(t, env["BILLY_DATABASE_URL"])
	waitFor(t, "the outbox rows to be relayed", func() bool {
		rows := outboxRows(t, db)
		return len(rows) == 2 && strings.HasSuffix(rows[0], "true false") && strings.HasSuffix(rows[1], "true false")
	})
	jobOf := func(media string) (string, string) {
		run := c.search("Task?focus=Media/" + media)[0]["id"].(string)
		var id string
		if err := db.QueryRow(t.Context(), `SELECT task_id::text FROM outbox WHERE dedupe_key = $1`, "transcribe:"+run).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return run, "billy-" + id
	}
	// The first run's job ended in Redis without starting the run (as when a worker of another
	// database takes it and drops it): archived, its row not done.
	_, job := jobOf(retried)
	if err := insp.ArchiveTask(queue, job); err != nil {
		t.Fatal(err)
	}
	// The second run's stage was already delivered three times and its row is done.
	run, job := jobOf(failing)
	if _, err := db.Exec(t.Context(), `WITH done AS (UPDATE outbox SET done_at = now() WHERE dedupe_key = $1 RETURNING task_type, payload, dedupe_key)
		INSERT INTO outbox (task_type, payload, dedupe_key, relayed_at, done_at) SELECT task_type, payload, dedupe_key, now(), now() FROM done, generate_series(1, 2)`,
		"transcribe:"+run); err != nil {
		t.Fatal(err)
	}
	if err := insp.DeleteTask(queue, job); err != nil {
		t.Fatal(err)
	}

	startProcess(t, "worker", env)
	if task := c.runOf("Media/"+retried, "transcribe", time.Minute); task["status"] != "completed" {
		t.Errorf("the run whose job ended: %v", task)
	}
	task := c.runOf("Media/"+failing, "transcribe", time.Minute)
	if reason := fmt.Sprint(task["statusReason"]); task["status"] != "failed" || !strings.Contains(reason, "queued 3 times and never started it") ||
		!strings.Contains(reason, "BILLY_PIPELINE_QUEUE") {
		t.Errorf("the run delivered three times: %v", task)
	}
	if n := stt.requests.Load(); n != 1 {
		t.Errorf("%d transcriptions, want 1", n)
	}
}
