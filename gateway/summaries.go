package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"weak"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// encodedJSON is a reply already in Docker's JSON: dockerMarshaler writes
// it as it is, and encoding/json (DockerShape's users) embeds it as JSON.
type encodedJSON []byte

func (e encodedJSON) MarshalJSON() ([]byte, error) { return e, nil }

// summaryCache keeps the encoded list entry of each container message it
// has seen, keyed by the message. The engine makes one summary message
// per version of a container's record and shares it between lists
// without ever changing it (the in-process connection hands it over as
// it is), so a list encodes only the containers that changed since the
// last one: encoding was most of a list's time. An entry goes when its
// message is collected.
//
// Status ("Up 3 minutes") is the one field that depends on the time of
// the list: it is left out of the cached text and written at each list.
type summaryCache struct {
	mu sync.Mutex
	m  map[weak.Pointer[enginev1.Container]]encodedSummary
}

// encodedSummary is a container.Summary's JSON around its Status value
// (whole: all of it in head, Status included).
type encodedSummary struct {
	head, tail []byte
	whole      bool
}

// errNotCached: the entry's text holds the Status mark more than once.
var errNotCached = errors.New("summary not cacheable")

var summaries = &summaryCache{m: map[weak.Pointer[enginev1.Container]]encodedSummary{}}

// statusMark stands for Status in the cached text: random, so no label,
// name or path (which a container's creator chooses) can hold it, and
// an entry is cached only if it is found exactly once.
var statusMark = func() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "\x00engined status " + hex.EncodeToString(b) + "\x00"
}()

var statusField = func() []byte {
	b, _ := json.Marshal(statusMark)
	return append([]byte(`,"Status":`), b...)
}()

// list is the encoded JSON array of the containers' summaries.
func (c *summaryCache) list(cs []*enginev1.Container) (encodedJSON, error) {
	entries := make([]encodedSummary, len(cs))
	size := 2
	for i, m := range cs {
		e, err := c.entry(m)
		if errors.Is(err, errNotCached) {
			e.head, err = json.Marshal(containerSummary(m))
			e.whole = true
		}
		if err != nil {
			return nil, err
		}
		entries[i] = e
		size += len(e.head) + len(e.tail) + 48
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e.head...)
		if e.whole {
			continue
		}
		status, err := json.Marshal(humanStatus(cs[i].GetState()))
		if err != nil {
			return nil, err
		}
		out = append(out, `,"Status":`...)
		out = append(out, status...)
		out = append(out, e.tail...)
	}
	return append(out, ']'), nil
}

func (c *summaryCache) entry(m *enginev1.Container) (encodedSummary, error) {
	key := weak.Make(m)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	s := containerSummary(m)
	s.Status = statusMark
	data, err := json.Marshal(s)
	if err != nil {
		return encodedSummary{}, fmt.Errorf("encode the summary of container %s: %w", m.GetId(), err)
	}
	i := bytes.Index(data, statusField)
	if i < 0 || bytes.Count(data, statusField) != 1 {
		// Encoded whole at each list instead.
		return encodedSummary{}, errNotCached
	}
	e = encodedSummary{head: data[:i:i], tail: data[i+len(statusField):]}
	c.mu.Lock()
	if _, ok := c.m[key]; !ok {
		c.m[key] = e
		runtime.AddCleanup(m, c.forget, key)
	}
	c.mu.Unlock()
	return e, nil
}

func (c *summaryCache) forget(key weak.Pointer[enginev1.Container]) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
