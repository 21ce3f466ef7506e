import assert from 'node:assert/strict'
import {test} from 'node:test'

import {BlockCache, blockedOrder, planBlocks, trajectoriesPerBlock} from '../../../src/training/blocks.js'
import {Rng} from '../../../src/training/rng.js'
import {isUserError} from '../../../src/util/errors.js'

const a = {name: 'a'}
const b = {name: 'b'}
// Split a: trajectories 0..9 with 3 and 7 held out; split b: 0..3.
const refs = [...[0, 1, 2, 4, 5, 6, 8, 9].map((index) => ({split: a, index})), ...[0, 1, 2, 3].map((index) => ({split: b, index}))]

test('blocks span at most perBlock trajectories and never cross a split', () => {
  const blocks = planBlocks(refs, 3)
  assert.deepEqual(blocks.map((x) => [x.split === a ? 'a' : 'b', x.first, x.count, x.lo, x.hi]), [
    ['a', 0, 3, 0, 3], ['a', 3, 3, 4, 7], ['a', 6, 2, 8, 10], ['b', 8, 3, 0, 3], ['b', 11, 1, 3, 4],
  ])
})

test('the streamed order is a seeded permutation that visits one block at a time, the same on every replay', () => {
  const blocks = planBlocks(refs, 3)
  const per = 5
  const order = blockedOrder(new Rng(7), blocks, per)
  assert.deepEqual([...order].sort((x, y) => x - y), Array.from({length: refs.length * per}, (_, i) => i))
  assert.deepEqual(blockedOrder(new Rng(7), blocks, per), order)
  assert.notDeepEqual(blockedOrder(new Rng(8), blocks, per), order)
  // Runs of items from one block: the block changes exactly blocks.length - 1 times.
  const blockOf = (item: number) => blocks.findIndex((x) => Math.floor(item / per) >= x.first && Math.floor(item / per) < x.first + x.count)
  let changes = 0
  for (let i = 1; i < order.length; i++) if (blockOf(order[i]) !== blockOf(order[i - 1])) changes++
  assert.equal(changes, blocks.length - 1)
})

test('the block cache reads each block as one range, holds at most its capacity and prefetches ahead', async () => {
  const reads: Array<[string, number, number]> = []
  const per = 2
  const read = (split: object, lo: number, hi: number) => {
    reads.push([(split as {name: string}).name, lo, hi])
    return Float32Array.from({length: (hi - lo) * per}, (_, i) => (split === a ? 100 : 200) + lo + i / per)
  }
  const cache = new BlockCache(planBlocks(refs, 3), refs.length, per, read, 2)
  const t = cache.trajectory(4, 5) // ref 4 = a/5, block [4, 7)
  assert.equal(t.data[t.offset], 105)
  cache.ensure([0, 1])
  assert.equal(cache.residentBlocks, 2)
  await cache.prefetch([9], [0])
  assert.deepEqual(reads, [['a', 4, 7], ['a', 0, 3], ['b', 0, 3]])
  assert.equal(cache.residentBlocks, 2, 'the least recently used block went')
  const u = cache.trajectory(0, 0)
  assert.equal(u.data[u.offset], 100)
  assert.equal(reads.length, 3, 'kept: the current step\'s block was not dropped by the prefetch')
  assert.equal(cache.bytesRead, 3 * 3 * per * 4)
})

test('a trajectory larger than a quarter of the budget is an error naming the knobs', () => {
  assert.equal(trajectoriesPerBlock(1000, 40_000, 'x'), 10)
  // A huge budget still reads at most 1 GiB at a time.
  assert.equal(trajectoriesPerBlock(823_296, 64 * 2 ** 30, 'x'), Math.floor(2 ** 30 / 823_296))
  assert.throws(() => trajectoriesPerBlock(823_296, 2 ** 20, 'the data (201 frames after training.time_stride 1)'), (e: unknown) => {
    assert.ok(isUserError(e))
    assert.equal(e.code, 'TRAIN_MEMORY_BUDGET')
    assert.match(e.message, /data\.memory_budget_mb/)
    assert.match(e.hint ?? '', /data\.memory_budget_mb to at least 4.*training\.time_stride/)
    return true
  })
})
