package shim

import (
	"testing"

	"github.com/opencontainers/runc/libcontainer"
)

func ended(s *Service) bool {
	select {
	case <-s.Done:
		return true
	default:
		return false
	}
}

func TestShimWithoutContainerEndsWithItsLastClient(t *testing.T) {
	s := New(t.TempDir())
	s.ClientConnected()
	s.ClientConnected()
	s.EndIfUnwanted()
	s.ClientGone()
	if ended(s) {
		t.Fatal("ended while a client was still connected")
	}
	s.ClientGone()
	if !ended(s) {
		t.Fatal("a shim with no container and no client did not end")
	}
	s.ClientGone() // a late close after the end is harmless
}

func TestShimNeverDialledEnds(t *testing.T) {
	s := New(t.TempDir())
	s.EndIfUnwanted()
	if !ended(s) {
		t.Fatal("a shim nobody connected to did not end")
	}
}

func TestShimWithContainerOutlivesItsClients(t *testing.T) {
	s := New(t.TempDir())
	s.ClientConnected()
	// What Create leaves: the container is the shim's to keep running
	// while engined is away.
	s.container = &libcontainer.Container{}
	s.ClientGone()
	s.EndIfUnwanted()
	if ended(s) {
		t.Fatal("a shim with a container ended when engined went away")
	}
}
