package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/errdefs"
	"github.com/engined/engined/internal/store"
	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// records keeps every container's record decoded in memory; bbolt backs
// it. A lookup, a list or a name check reads memory only, so its cost
// does not grow with what it would otherwise decode. engined is bbolt's
// only writer and every container write goes through here, so memory
// and the file never disagree once a write returned.
type records struct {
	db *store.Store

	// write orders the writers: a write's commit and its index update
	// are one step, so a later write never lands in memory before an
	// earlier one.
	write sync.Mutex

	mu     sync.RWMutex
	byID   map[string]*indexed
	byName map[string]string // "/name" → ID
	order  []string          // IDs, oldest first
}

// indexed is one version of a record: never changed once in the index
// (a write indexes a new one), so readers share it without copying.
type indexed struct {
	rec *Record
	// inspect and summary are what inspect and a list show of this
	// version, made on first use.
	inspect, summary atomic.Pointer[enginev1.Container]
}

// loadRecords decodes the store's records once, at engined's start.
func loadRecords(db *store.Store) (*records, error) {
	x := &records{db: db, byID: map[string]*indexed{}, byName: map[string]string{}}
	var recs []*Record
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketContainers).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode container %s: %w", k, err)
			}
			recs = append(recs, &r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(recs, func(a, b *Record) int { return a.Created.Compare(b.Created) })
	for _, r := range recs {
		x.byID[r.ID] = &indexed{rec: r}
		x.byName[r.Name] = r.ID
		x.order = append(x.order, r.ID)
	}
	return x, nil
}

// get resolves ref (a full ID, a name, or a unique ID prefix, in that
// order, as dockerd) to a copy of its record the caller may change.
func (x *records) get(ref string) (*Record, error) {
	e, err := x.lookup(ref)
	if err != nil {
		return nil, err
	}
	return e.rec.clone(), nil
}

func (x *records) lookup(ref string) (*indexed, error) {
	if ref == "" {
		return nil, errdefs.InvalidArgument(errors.New("container name or ID must not be empty"))
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.lookupLocked(ref)
}

func (x *records) lookupLocked(ref string) (*indexed, error) {
	if e := x.byID[ref]; e != nil {
		return e, nil
	}
	if id, ok := x.byName["/"+strings.TrimPrefix(ref, "/")]; ok {
		return x.byID[id], nil
	}
	var found *indexed
	for _, id := range x.order {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.InvalidArgument(fmt.Errorf("multiple IDs found with provided prefix: %s", ref))
			}
			found = x.byID[id]
		}
	}
	if found == nil {
		return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
	}
	return found, nil
}

// each calls fn with every record, newest first, until fn returns
// false. The records are shared: fn must not change them, nor write
// records (the index is read-locked meanwhile).
func (x *records) each(fn func(*indexed) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i := len(x.order) - 1; i >= 0; i-- {
		if !fn(x.byID[x.order[i]]) {
			return
		}
	}
}

// entries are the current versions of every record, oldest first: they
// are shared, as each's.
func (x *records) entries() []*indexed {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*indexed, 0, len(x.order))
	for _, id := range x.order {
		out = append(out, x.byID[id])
	}
	return out
}

// all is a copy of every record, oldest first.
func (x *records) all() []*Record {
	var out []*Record
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, id := range x.order {
		out = append(out, x.byID[id].rec.clone())
	}
	return out
}

// insert stores a new record. Its name must be free; a generated one
// that is taken is generated again, with a digit after the first
// retries (as dockerd) and the retry count after many, so it never
// fails.
func (x *records) insert(rec *Record, generated bool) error {
	x.write.Lock()
	defer x.write.Unlock()
	taken := func(name string) string {
		x.mu.RLock()
		defer x.mu.RUnlock()
		return x.byName[name]
	}
	for i := 1; generated && taken(rec.Name) != ""; i++ {
		rec.Name = "/" + generateName(i)
		if i > 20 {
			rec.Name += strconv.Itoa(i)
		}
	}
	if other := taken(rec.Name); other != "" {
		return errdefs.AlreadyExists(fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", rec.Name, other))
	}
	stored := rec.clone()
	if err := x.put(stored); err != nil {
		return err
	}
	x.mu.Lock()
	x.byID[stored.ID] = &indexed{rec: stored}
	x.byName[stored.Name] = stored.ID
	x.order = append(x.order, stored.ID)
	x.mu.Unlock()
	return nil
}

// update applies fn to a copy of id's record and stores it; it returns
// another copy of what was stored.
func (x *records) update(id string, fn func(*Record) error) (*Record, error) {
	x.write.Lock()
	defer x.write.Unlock()
	x.mu.RLock()
	cur := x.byID[id]
	x.mu.RUnlock()
	if cur == nil {
		return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", id))
	}
	r := cur.rec.clone()
	if err := fn(r); err != nil {
		return nil, err
	}
	if r.ID != id || r.Name != cur.rec.Name {
		return nil, fmt.Errorf("container %s: an update may not change the ID or name", id)
	}
	if err := x.put(r); err != nil {
		return nil, err
	}
	x.mu.Lock()
	x.byID[id] = &indexed{rec: r}
	x.mu.Unlock()
	return r.clone(), nil
}

// rename gives ref's container a new name ("/name"), if no other has it.
func (x *records) rename(ref, name string) (id, oldName string, err error) {
	x.write.Lock()
	defer x.write.Unlock()
	x.mu.RLock()
	cur, err := x.lookupLocked(ref)
	other := x.byName[name]
	x.mu.RUnlock()
	if err != nil {
		return "", "", err
	}
	if other != "" && other != cur.rec.ID {
		return "", "", errdefs.AlreadyExists(fmt.Errorf("Error when allocating new name: Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, other))
	}
	r := cur.rec.clone()
	r.Name = name
	if err := x.put(r); err != nil {
		return "", "", err
	}
	x.mu.Lock()
	delete(x.byName, cur.rec.Name)
	x.byName[name] = r.ID
	x.byID[r.ID] = &indexed{rec: r}
	x.mu.Unlock()
	return r.ID, cur.rec.Name, nil
}

// remove deletes id's record.
func (x *records) remove(id string) error {
	x.write.Lock()
	defer x.write.Unlock()
	err := x.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketContainers).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("remove container record %s: %w", id, err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur := x.byID[id]; cur != nil {
		delete(x.byName, cur.rec.Name)
		delete(x.byID, id)
		if i := slices.Index(x.order, id); i >= 0 {
			x.order = slices.Delete(x.order, i, i+1)
		}
	}
	return nil
}

func (x *records) put(r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode container %s: %w", r.ID, err)
	}
	if err := x.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketContainers).Put([]byte(r.ID), v)
	}); err != nil {
		return fmt.Errorf("store container %s: %w", r.ID, err)
	}
	return nil
}

// clone is a deep copy of r: the index's versions are shared, the
// callers' copies are theirs to change.
func (r *Record) clone() *Record {
	c := *r
	c.Args = slices.Clone(r.Args)
	c.Config = slices.Clone(r.Config)
	c.HostConfig = slices.Clone(r.HostConfig)
	if r.Networks != nil {
		c.Networks = make(map[string]*NetworkEndpoint, len(r.Networks))
		for k, ep := range r.Networks {
			if ep == nil {
				c.Networks[k] = nil
				continue
			}
			e := *ep
			e.Aliases, e.Ports, e.DNSNames = slices.Clone(ep.Aliases), slices.Clone(ep.Ports), slices.Clone(ep.DNSNames)
			c.Networks[k] = &e
		}
	}
	if r.Mounts != nil {
		c.Mounts = make([]MountPoint, len(r.Mounts))
		for i, m := range r.Mounts {
			m.driverOpts, m.labels = maps.Clone(m.driverOpts), maps.Clone(m.labels)
			c.Mounts[i] = m
		}
	}
	if r.Health != nil {
		h := *r.Health
		h.Log = slices.Clone(r.Health.Log)
		c.Health = &h
	}
	return &c
}
