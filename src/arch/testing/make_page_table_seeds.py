#!/usr/bin/env python3
# Usage: src/arch/testing/make_page_table_seeds.py testdata/fuzz/page_tables
# Generates the page_table_fuzzer seed corpus (testdata/fuzz/page_tables/). Input format:
# byte 0 = mode (bit0: 5-level, bit1: NX disabled, bits2-3: phys-bits choice), bytes 1..8 =
# CR3 (little-endian), then guest RAM from physical 0; page 0 = virtual addresses to translate.
import struct, sys, os
P, W, U, A, D, PS, G, NX = 1, 2, 4, 0x20, 0x40, 0x80, 0x100, 1 << 63
TB = P | W | U

class Builder:
    def __init__(self, levels, npages=32):
        self.levels = levels
        self.ram = bytearray(npages * 4096)
        self.next = 4096
        self.root = self.new()
    def new(self):
        t = self.next; self.next += 4096; return t
    def get(self, a): return struct.unpack_from('<Q', self.ram, a)[0]
    def set(self, a, v): struct.pack_into('<Q', self.ram, a, v & (2**64 - 1))
    def idx(self, va, level): return (va >> (12 + 9 * (level - 1))) & 511
    def table_for(self, va, level):
        t = self.root
        for l in range(self.levels, level, -1):
            slot = t + self.idx(va, l) * 8
            e = self.get(slot)
            if not e & P:
                c = self.new(); e = c | TB; self.set(slot, e)
            t = e & 0x000ffffffffff000
        return t
    def map(self, va, pa, size, bits=W):
        level = {4096: 1, 2 << 20: 2, 1 << 30: 3}[size]
        t = self.table_for(va, level)
        e = pa | P | bits | (PS if level > 1 else 0)
        self.set(t + self.idx(va, level) * 8, e)
    def image(self, vas):
        for i, va in enumerate(vas[:512]): self.set(i * 8, va)
        return bytes(self.ram[:self.next])

def write(name, mode, b, vas, cr3=None):
    data = bytes([mode]) + struct.pack('<Q', b.root if cr3 is None else cr3) + b.image(vas)
    open(os.path.join(sys.argv[1], name), 'wb').write(data)

K = 0xffffffff81000000
# 1: a small 4-level kernel: text 4K pages, a 2M page, a 1G direct map, a user page.
b = Builder(4)
for i in range(8): b.map(K + i * 4096, 0x10000 + i * 4096, 4096, 0 if i < 4 else NX | W)
b.map(K + (2 << 20), 0x200000, 2 << 20, W | G | A | D)
b.map(0xffff888000000000, 0, 1 << 30, W | NX)
b.map(0x400000, 0x18000, 4096, U | W)
write('kernel_4level', 0b0100, b, [K, K + 0x4123, K + 0x200000 + 77, 0xffff888000012345, 0x400010, 0x1000, 0x0000800000000000])
# 2: 5-level with user and kernel halves, phys-bits 40.
b = Builder(5)
for i in range(16): b.map(0xff11000000000000 + i * 4096, i * 4096, 4096, W)
b.map(0xffa0000000200000, 0x400000, 2 << 20, W | NX)
b.map(0x7f0000000000, 0x1c000, 4096, U | W | NX)
write('kernel_5level', 0b0101, b, [0xff11000000000000, 0xff11000000003fff, 0xffa0000000312345, 0x7f0000000008, 0x0100000000000000])
# 3: a recursive (self-referencing) root slot.
b = Builder(4)
b.map(K, 0x10000, 4096)
b.set(b.root + 0x1ed * 8, b.root | TB)
rec = 0xffff000000000000 | (0x1ed << 39) | (0x1ed << 30) | (0x1ed << 21) | (0x1ed << 12)
write('recursive_slot', 0b0000, b, [K, rec, rec + 8, 0xfffff6fb7dbed000])
# 4: one page table shared by several PD entries with different permissions.
b = Builder(4)
va = 0xffffc90000000000
b.map(va, 0x10000, 4096); b.map(va + 4096, 0x11000, 4096)
pd = b.table_for(va, 2)
pt = b.get(pd)
b.set(pd + 8, pt); b.set(pd + 16, (pt & ~W) | NX); b.set(pd + 24, pt)
write('shared_tables', 0b0000, b, [va, va + (2 << 20), va + (4 << 20) + 4096, va + (6 << 20)])
# 5: every root entry points at the root (5-level): must stay bounded.
b = Builder(5, 4)
for i in range(512): b.set(b.root + i * 8, b.root | TB)
write('all_entries_to_root', 0b0001, b, [0, 0x1000, 0xff00000000000000])
# 6: pointers past RAM and reserved bits.
b = Builder(4)
b.map(K, 0x10000, 4096); b.map(K + (2 << 20), 0x10000, 4096); b.map(K + (4 << 20), 0x10000, 4096)
pd = b.table_for(K, 2)
b.set(pd + b.idx(K + (2 << 20), 2) * 8, 0x700000000 | TB)
pt = b.table_for(K + (4 << 20), 1)
b.set(pt + b.idx(K + (4 << 20), 1) * 8, 0x10000 | P | (1 << 44))
write('hostile_pointers', 0b0100, b, [K, K + (2 << 20), K + (4 << 20)])
# 7: a shared page table whose first range merges with the previous table's last one and
# whose last range is continued by the next table (the enumeration copies it clipped).
b = Builder(4)
a = 0xffffc90000000000
b.map(a + (2 << 20) - 4096, 0xf000, 4096)
b.map(a + (2 << 20), 0x10000, 4096); b.map(a + (2 << 20) + 4096, 0x11000, 4096)
b.map(a + (4 << 20) - 4096, 0x14000, 4096); b.map(a + (4 << 20), 0x15000, 4096)
pd = b.table_for(a, 2)
b.set(pd + 5 * 8, b.get(pd + 1 * 8))
write('shared_tables_merged', 0b0000, b, [a + (10 << 20), a + (10 << 20) + 4096, a + (12 << 20) - 4096, a + (2 << 20) - 8])
