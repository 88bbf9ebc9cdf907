package container

import (
	"crypto/rand"
	"math/big"
)

// Names like dockerd's: adjective_scientist.
var (
	adjectives = []string{"admiring", "brave", "clever", "dazzling", "eager", "festive", "gallant", "happy", "jolly", "keen",
		"loving", "modest", "nifty", "optimistic", "quirky", "relaxed", "serene", "tender", "upbeat", "vibrant", "wizardly", "zealous"}
	surnames = []string{"curie", "darwin", "euler", "feynman", "gauss", "hopper", "hypatia", "kepler", "lovelace", "meitner",
		"newton", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak", "yalow", "lamport", "knuth", "dijkstra"}
)

func pick(list []string) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	return list[n.Int64()]
}

func generateName() string { return pick(adjectives) + "_" + pick(surnames) }
