package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/engined/engined/internal/store"
)

// Layer is one layer of an image as stored.
type Layer struct {
	// Digest and MediaType are the blob as pulled and pushed (compressed).
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
	DiffID    digest.Digest `json:"diffID"`
	ChainID   digest.Digest `json:"chainID"`
	// Unpacked is the bytes of file content the layer holds.
	Unpacked int64 `json:"unpacked"`
}

// Record is an image's metadata; its ID is the config blob's digest.
type Record struct {
	ID                digest.Digest `json:"id"`
	Manifest          digest.Digest `json:"manifest"`
	ManifestMediaType string        `json:"manifestMediaType"`
	Layers            []Layer       `json:"layers"`
	// RepoTags and RepoDigests are fully qualified
	// ("docker.io/library/busybox:latest").
	RepoTags    []string  `json:"repoTags,omitempty"`
	RepoDigests []string  `json:"repoDigests,omitempty"`
	Created     time.Time `json:"created"`
	Added       time.Time `json:"added"`
	LastTagTime time.Time `json:"lastTagTime,omitzero"`
	// Parent is the image a build step or a commit made this one from.
	Parent digest.Digest `json:"parent,omitempty"`
	// BuildCache marks an image a build step made (the build cache).
	BuildCache bool `json:"buildCache,omitempty"`
}

// Size is the unpacked size of all layers.
func (r *Record) Size() int64 {
	var n int64
	for _, l := range r.Layers {
		n += l.Unpacked
	}
	return n
}

// ChainIDs are the layers' snapshot keys, top layer first.
func (r *Record) ChainIDs() []digest.Digest {
	out := make([]digest.Digest, len(r.Layers))
	for i, l := range r.Layers {
		out[len(r.Layers)-1-i] = l.ChainID
	}
	return out
}

// Buckets inside store.BucketImages.
var (
	bucketByID = []byte("by-id")
	bucketRefs = []byte("refs") // full tag reference -> image ID
	// bucketChildren indexes images by parent: "<parent>/<child>" keys.
	bucketChildren = []byte("children")
)

func imagesBucket(tx *bolt.Tx, sub []byte) (*bolt.Bucket, error) {
	top := tx.Bucket(store.BucketImages)
	if top == nil {
		return nil, errors.New("images bucket missing")
	}
	if tx.Writable() {
		return top.CreateBucketIfNotExists(sub)
	}
	b := top.Bucket(sub)
	if b == nil {
		return nil, nil
	}
	return b, nil
}

func getRecord(tx *bolt.Tx, id digest.Digest) (*Record, error) {
	b, err := imagesBucket(tx, bucketByID)
	if err != nil || b == nil {
		return nil, err
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode image %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *Record) error {
	b, err := imagesBucket(tx, bucketByID)
	if err != nil {
		return err
	}
	sort.Strings(r.RepoTags)
	sort.Strings(r.RepoDigests)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if r.Parent != "" {
		c, err := imagesBucket(tx, bucketChildren)
		if err != nil {
			return err
		}
		if err := c.Put([]byte(r.Parent.String()+"/"+r.ID.String()), nil); err != nil {
			return err
		}
	}
	return b.Put([]byte(r.ID), v)
}

func deleteRecord(tx *bolt.Tx, id digest.Digest) error {
	b, err := imagesBucket(tx, bucketByID)
	if err != nil {
		return err
	}
	if r, err := getRecord(tx, id); err == nil && r != nil && r.Parent != "" {
		c, err := imagesBucket(tx, bucketChildren)
		if err != nil {
			return err
		}
		if err := c.Delete([]byte(r.Parent.String() + "/" + id.String())); err != nil {
			return err
		}
	}
	return b.Delete([]byte(id))
}

// childIDs lists the images made from parent, through the index.
func childIDs(tx *bolt.Tx, parent digest.Digest) ([]digest.Digest, error) {
	c, err := imagesBucket(tx, bucketChildren)
	if err != nil || c == nil {
		return nil, err
	}
	prefix := []byte(parent.String() + "/")
	var out []digest.Digest
	cur := c.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		out = append(out, digest.Digest(k[len(prefix):]))
	}
	return out, nil
}

func allRecords(tx *bolt.Tx) ([]*Record, error) {
	b, err := imagesBucket(tx, bucketByID)
	if err != nil || b == nil {
		return nil, err
	}
	var out []*Record
	err = b.ForEach(func(_, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

func getRef(tx *bolt.Tx, ref string) (digest.Digest, error) {
	b, err := imagesBucket(tx, bucketRefs)
	if err != nil || b == nil {
		return "", err
	}
	return digest.Digest(b.Get([]byte(ref))), nil
}

// setTag points ref at image id, moving it off any image that had it.
func setTag(tx *bolt.Tx, ref string, id digest.Digest, now time.Time) error {
	refs, err := imagesBucket(tx, bucketRefs)
	if err != nil {
		return err
	}
	if old := digest.Digest(refs.Get([]byte(ref))); old != "" && old != id {
		prev, err := getRecord(tx, old)
		if err != nil {
			return err
		}
		if prev != nil {
			prev.RepoTags = without(prev.RepoTags, ref)
			if err := putRecord(tx, prev); err != nil {
				return err
			}
		}
	}
	if err := refs.Put([]byte(ref), []byte(id)); err != nil {
		return err
	}
	r, err := getRecord(tx, id)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("tag %s: image %s not found", ref, id)
	}
	if !contains(r.RepoTags, ref) {
		r.RepoTags = append(r.RepoTags, ref)
		r.LastTagTime = now
	}
	return putRecord(tx, r)
}

func removeTag(tx *bolt.Tx, ref string) error {
	refs, err := imagesBucket(tx, bucketRefs)
	if err != nil {
		return err
	}
	return refs.Delete([]byte(ref))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// shortID is the 12-hex form Docker prints.
func shortID(id digest.Digest) string {
	return strings.TrimPrefix(id.Encoded(), "")[:12]
}
