//go:build !linux

package logs

// watch is inotify's stand-in: followers poll.
func watch(string) (<-chan struct{}, func()) { return nil, func() {} }
