// Package lru is a cache of values that never change for their key, kept in
// least-recently-used order and bounded by the bytes they count for.
package lru

import (
	"container/list"
	"sync"
)

// EntryOverhead is what a Cache counts for an entry besides its key and
// value: the map entry, the list element and the entry itself.
const EntryOverhead = 128

// A Cache keeps values that never change for their key, in
// least-recently-used order, bounded by the bytes they count for. It is
// safe for concurrent use; a nil *Cache holds nothing.
type Cache[K comparable, V any] struct {
	max  int64         // bytes; entries are evicted beyond it
	cost func(V) int64 // the bytes of a value, without EntryOverhead

	mu    sync.Mutex
	size  int64               // guarded by mu; bytes held, overhead included
	order list.List           // guarded by mu; of *lruEntry, most recently used first
	byKey map[K]*list.Element // guarded by mu
}

type lruEntry[K comparable, V any] struct {
	key K
	val V // never modified
}

// New returns a cache of at most maxBytes, or nil (no cache) if
// maxBytes is 0 or less. A value v counts for cost(v) bytes.
func New[K comparable, V any](maxBytes int64, cost func(V) int64) *Cache[K, V] {
	if maxBytes <= 0 {
		return nil
	}
	return &Cache[K, V]{max: maxBytes, cost: cost, byKey: make(map[K]*list.Element)}
}

// Get returns the value of k, if cached. The caller must not modify it.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

// Put caches v, the value of k, which the caller must not modify
// afterwards. A value larger than the whole cache is not kept. A cached
// value is replaced only by one that costs more: the values of a key are
// the same, or, for a tile, longer and longer prefixes of the same content.
func (c *Cache[K, V]) Put(k K, v V) {
	if c == nil {
		return
	}
	n := c.cost(v) + EntryOverhead
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		c.order.MoveToFront(e)
		entry := e.Value.(*lruEntry[K, V])
		if old := c.cost(entry.val) + EntryOverhead; n > old {
			entry.val = v
			c.size += n - old
			c.evict()
		}
		return
	}
	c.byKey[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	c.size += n
	c.evict()
}

// evict removes the least recently used entries until the cache is within
// its bound. The caller holds c.mu.
func (c *Cache[K, V]) evict() {
	for c.size > c.max {
		old := c.order.Remove(c.order.Back()).(*lruEntry[K, V])
		delete(c.byKey, old.key)
		c.size -= c.cost(old.val) + EntryOverhead
	}
}

// Bytes returns the bytes held, overhead included.
func (c *Cache[K, V]) Bytes() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// Len returns the number of entries held.
func (c *Cache[K, V]) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}
