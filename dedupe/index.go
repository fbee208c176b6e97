package dedupe

// keyIndex is a generation's index of its entries by their keys: an
// open-addressed table (linear probing) of len a power of two, kept at
// most half full. A generation dropped empties its index whole (reset),
// so that no slot is ever taken out of one: linear probing would have to
// place the slots after it again.
//
// Under a flood of new keys nearly every lookup is of a key the window
// does not hold, and every one adds a slot at a place of its own in a
// table too large for the caches (a window of 100,000 keys has 2 MB of
// slots). So the table is probed through ctrl, a byte a slot (an eighth of
// the slots' memory): a lookup of an unknown key reads only ctrl, and a
// slot itself only where its byte matches the key's. A new slot's byte is written at once; the slot, in a line of
// memory the caches have most likely forgotten, waits in pending and is
// written with others, a batch at a time, so that their misses overlap
// instead of each holding up the release of the lock (an unlock waits
// for the writes before it). A slot is read only once the batch is
// written (slot).
type keyIndex struct {
	// ctrl has a byte for each slot: 0 for a free one, else ctrlOf its
	// tag.
	ctrl []byte
	// slots holds, for each slot whose ctrl byte is set, the high 32 bits
	// of the key's first hash (its tag), then 1 + the place of the entry
	// in the generation (32 bits); but for those still pending. A free
	// slot's value is stale.
	slots []uint64
	// pending are the slots placed but not yet written into slots: at
	// pendingAt (an index has fewer than 1<<32 slots: a generation has at
	// most maxGenEntries), pendingSlot.
	pendingAt   [maxPending]uint32
	pendingSlot [maxPending]uint64
	npending    int
}

// maxPending is the most slots written a batch at a time: fewer than the
// misses a core tracks at once (some 20), so that a batch's misses
// overlap rather than wait for each other.
const maxPending = 16

// minIndex is the smallest index of a generation.
const minIndex = 64

// slot is what the index holds for the entry at place i of its
// generation, of key h.
func slot(h keyHash, i int) uint64 { return h[0]>>32<<32 | uint64(i+1) }

// slotTag is the tag of slot s.
func slotTag(s uint64) uint64 { return s >> 32 }

// slotPlace is the place of the entry of slot s in its generation.
func slotPlace(s uint64) int { return int(s&(1<<32-1)) - 1 }

// ctrlOf is the ctrl byte of a slot of tag: the high bit set, and the
// tag's top 7 bits, which do not choose its home in an index of up to
// 1<<25 slots (in a larger one they may, and filter less).
func ctrlOf(tag uint64) byte { return 0x80 | byte(tag>>25) }

// home is where the probe for the key of a slot's tag starts in an index
// of mask+1 slots: its tag's low bits, so that the index can be built
// again from its slots alone, without reading the entries.
func home(tag, mask uint64) uint64 { return tag & mask }

// size returns the number of slots of x.
func (x *keyIndex) size() int { return len(x.ctrl) }

// slot returns the slot at p, whose ctrl byte is set, once the pending
// slots are written.
func (x *keyIndex) slot(p uint64) uint64 {
	if x.npending > 0 {
		x.flush()
	}
	return x.slots[p]
}

// flush writes the pending slots.
func (x *keyIndex) flush() {
	for i, p := range x.pendingAt[:x.npending] {
		x.slots[p] = x.pendingSlot[i]
	}
	x.npending = 0
}

// free returns the first free place at or after the home of tag.
func (x *keyIndex) free(tag uint64) uint64 {
	mask := uint64(len(x.ctrl) - 1)
	p := home(tag, mask)
	for x.ctrl[p] != 0 {
		p = (p + 1) & mask
	}
	return p
}

// add places s, a slot, at or after its home, growing the index first
// when n, the number of slots it will hold, would make it more than half
// full, which it reports. The slot is written with the next batch.
func (x *keyIndex) add(s uint64, n int) (grew bool) {
	if 2*n > len(x.ctrl) {
		x.grow(max(minIndex, 2*len(x.ctrl)))
		grew = true
	}
	p := x.free(slotTag(s))
	x.ctrl[p] = ctrlOf(slotTag(s))
	x.pendingAt[x.npending] = uint32(p)
	x.pendingSlot[x.npending] = s
	if x.npending++; x.npending == maxPending {
		x.flush()
	}
	return grew
}

// grow builds the index again with n slots, more than it has.
func (x *keyIndex) grow(n int) {
	x.flush()
	ctrl, slots := x.ctrl, x.slots
	x.ctrl, x.slots = make([]byte, n), make([]uint64, n)
	for p, c := range ctrl {
		if c != 0 {
			s := slots[p]
			q := x.free(slotTag(s))
			x.ctrl[q], x.slots[q] = c, s
		}
	}
}

// reset empties x, keeping its memory: its slots' values go stale.
func (x *keyIndex) reset() {
	clear(x.ctrl)
	x.npending = 0
}
