// udpecho answers each UDP datagram on the port its argument names with
// the container's hostname and the datagram, so a test can publish a UDP
// port (busybox has no UDP server); "udpecho send ADDR MSG" sends MSG to
// ADDR ten times, 100ms apart, and expects no answer (a one-way probe).
// It is built static (CGO_ENABLED=0) and bind-mounted into a busybox
// container.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "send" {
		c, err := net.Dial("udp4", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for i := 0; i < 10; i++ {
			c.Write([]byte(os.Args[3]))
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Println("sent")
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: udpecho PORT | udpecho send ADDR MSG")
		os.Exit(2)
	}
	c, err := net.ListenPacket("udp4", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	host, _ := os.Hostname()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.WriteTo(append([]byte(host+" "), buf[:n]...), from)
	}
}
