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

// retryName is the name to try after retry names were taken. There are
// only len(adjectives)*len(surnames) plain names, so, as dockerd does,
// retries append a digit, and the last resort is the short ID.
func retryName(retry int, id string) string {
	if retry >= 50 {
		return id[:12]
	}
	return generateName() + pick([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})
}
