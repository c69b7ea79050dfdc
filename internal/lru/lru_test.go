package lru

import (
	"bytes"
	"testing"
)

// A key and a value as the server's cache of tiles has them: a tile's
// level and index, and its content and width.
type key struct {
	level int
	index int64
}

type value struct {
	data  []byte
	width int
}

func valueCost(v value) int64 { return int64(len(v.data)) }

// cost returns the bytes a cached value of data counts for.
func cost(data []byte) int64 { return int64(len(data)) + EntryOverhead }

func TestEviction(t *testing.T) {
	tile := func(b byte) []byte { return bytes.Repeat([]byte{b}, 8192) }
	c := New[key](3*cost(tile(0)), valueCost)
	for i := range 3 {
		c.Put(key{0, int64(i)}, value{tile(byte(i)), 256})
	}
	if c.Len() != 3 || c.Bytes() != 3*cost(tile(0)) {
		t.Fatalf("after 3 puts: %d values, %d bytes; want 3, %d", c.Len(), c.Bytes(), 3*cost(tile(0)))
	}
	// Use 0, so that 1 is the least recently used.
	if got, ok := c.Get(key{0, 0}); !ok || !bytes.Equal(got.data, tile(0)) {
		t.Fatalf("Get(0, 0) = %.8q, %v; want the value of 0s", got.data, ok)
	}
	c.Put(key{0, 3}, value{tile(3), 256})
	if _, ok := c.Get(key{0, 1}); ok {
		t.Error("value 1, the least recently used, was not evicted")
	}
	for _, n := range []int64{0, 2, 3} {
		if got, ok := c.Get(key{0, n}); !ok || !bytes.Equal(got.data, tile(byte(n))) {
			t.Errorf("Get(0, %d) = %.8q, %v; want the value of %ds", n, got.data, ok, n)
		}
	}
	if c.Bytes() > c.max {
		t.Errorf("cache holds %d bytes, more than its bound %d", c.Bytes(), c.max)
	}
	// Another key with the same index.
	if _, ok := c.Get(key{-1, 0}); ok {
		t.Error("Get(-1, 0) found the value of key (0, 0)")
	}
	// A second put of a cached value changes nothing.
	c.Put(key{0, 3}, value{tile(3), 256})
	if c.Len() != 3 || c.Bytes() != 3*cost(tile(0)) {
		t.Errorf("after a second put: %d values, %d bytes; want 3, %d", c.Len(), c.Bytes(), 3*cost(tile(0)))
	}
	// A longer value replaces a shorter one; a shorter one does not
	// replace a longer one.
	c.Put(key{0, 4}, value{tile(4)[:4096], 128})
	c.Put(key{0, 4}, value{tile(4), 256})
	c.Put(key{0, 4}, value{tile(4)[:32], 1})
	if got, ok := c.Get(key{0, 4}); !ok || got.width != 256 || c.Bytes() != 3*cost(tile(0)) {
		t.Errorf("after a value grew: width %d, %v, %d bytes held; want 256, true, %d", got.width, ok, c.Bytes(), 3*cost(tile(0)))
	}
	// A value larger than the cache is not kept, and evicts nothing.
	c.Put(key{0, 9}, value{make([]byte, 4*8192), 256})
	if _, ok := c.Get(key{0, 9}); ok || c.Len() != 3 {
		t.Errorf("a value larger than the cache: cached %v, %d values held; want false, 3", ok, c.Len())
	}

	var none *Cache[key, value] // New(0)
	if New[key](0, valueCost) != nil || New[key](-1, valueCost) != nil {
		t.Error("New(0 or less) is not nil")
	}
	none.Put(key{0, 0}, value{tile(0), 256})
	if _, ok := none.Get(key{0, 0}); ok || none.Len() != 0 || none.Bytes() != 0 {
		t.Error("the nil cache holds a value")
	}
}
