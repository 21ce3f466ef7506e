/**
 * Trajectories that do not all fit in memory, read a block at a time.
 *
 * A block is a run of consecutive trajectories of one split (their refs are consecutive in the
 * item list). A streamed epoch visits the blocks in a seeded random order and the items of each
 * block in a seeded random order within it, so every read is one contiguous hyperslab and at most
 * two blocks (the current one and the next, prefetched) are needed at a time. The order depends
 * only on the stage's RNG and the block size, so a resumed epoch replays it exactly; the block size
 * comes from data.memory_budget_mb, so changing the budget between resumes changes the order.
 */
import {ExitCode, UserError} from '../util/errors.js'
import type {Rng} from './rng.js'

export interface Block {
  /** Key of the split the block belongs to (the same split object for every trajectory in it). */
  split: object
  /** Item refs [first, first + count) of the stage's trajectory list. */
  first: number
  count: number
  /** Trajectory indices [lo, hi) inside the split (held-out trajectories in between are read too). */
  lo: number
  hi: number
}

/**
 * Splits refs into blocks spanning at most `perBlock` trajectories (held-out ones in between
 * included, so a read never exceeds the budget) that never cross a split.
 */
export function planBlocks(refs: Array<{split: object; index: number}>, perBlock: number): Block[] {
  const blocks: Block[] = []
  let cur: Block | null = null
  refs.forEach((r, i) => {
    if (!cur || cur.split !== r.split || r.index < cur.hi || r.index + 1 - cur.lo > perBlock) {
      cur = {split: r.split, first: i, count: 0, lo: r.index, hi: r.index + 1}
      blocks.push(cur)
    }
    cur.count++
    cur.hi = r.index + 1
  })
  return blocks
}

/**
 * The streamed epoch order over items (item i belongs to ref floor(i / perRef)): blocks in a
 * seeded order, each block's items shuffled within it.
 */
export function blockedOrder(rng: Rng, blocks: Block[], perRef: number): number[] {
  const out: number[] = []
  for (const b of rng.permutation(blocks.length)) {
    const block = blocks[b]
    const base = block.first * perRef
    for (const j of rng.permutation(block.count * perRef)) out.push(base + j)
  }
  return out
}

/** Reads trajectories [lo, hi) of a split as one array of (hi - lo) * perTrajectory floats. */
export type BlockRead = (split: object, lo: number, hi: number) => Float32Array

/**
 * The resident blocks of one item list: loaded on demand (synchronously) or ahead of time
 * (prefetch), the least recently used dropped once more than `capacity` are held.
 */
export class BlockCache {
  private readonly resident = new Map<number, Float32Array>()
  private readonly blockOfRef: Int32Array
  /** Values read so far (diagnostics and the benchmark's throughput). */
  bytesRead = 0

  constructor(
    readonly blocks: Block[],
    refCount: number,
    private readonly perTrajectory: number,
    private readonly read: BlockRead,
    private readonly capacity = 2,
  ) {
    this.blockOfRef = new Int32Array(refCount)
    blocks.forEach((b, k) => this.blockOfRef.fill(k, b.first, b.first + b.count))
  }

  /** The trajectory of ref `pos`: its data starts at `offset` of `data`. Loads its block when missing. */
  trajectory(pos: number, refIndex: number): {data: Float32Array; offset: number} {
    const k = this.blockOfRef[pos]
    const data = this.load(k)
    return {data, offset: (refIndex - this.blocks[k].lo) * this.perTrajectory}
  }

  /** Makes sure the blocks of these refs are resident (keeping them over older ones). */
  ensure(refPositions: Iterable<number>): void {
    const need = new Set<number>()
    for (const p of refPositions) need.add(this.blockOfRef[p])
    for (const k of need) this.load(k, need)
  }

  /**
   * Reads the blocks of refs `ahead` after the current event-loop turn (between the awaits of the
   * running step), never dropping the blocks of refs `current`; settles once they are resident.
   */
  prefetch(ahead: Iterable<number>, current: Iterable<number> = []): Promise<void> {
    const keep = new Set<number>()
    for (const p of current) keep.add(this.blockOfRef[p])
    const want = new Set<number>()
    for (const p of ahead) want.add(this.blockOfRef[p])
    const missing = [...want].filter((k) => !this.resident.has(k))
    if (missing.length === 0) return Promise.resolve()
    for (const k of want) keep.add(k)
    return new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        try {
          for (const k of missing) this.load(k, keep)
          resolve()
        } catch (error) {
          reject(error)
        }
      })
    })
  }

  get residentBlocks(): number {
    return this.resident.size
  }

  private load(k: number, keep: Set<number> = new Set([k])): Float32Array {
    const hit = this.resident.get(k)
    if (hit) {
      // Most recently used goes last.
      this.resident.delete(k)
      this.resident.set(k, hit)
      return hit
    }
    for (const old of this.resident.keys()) {
      if (this.resident.size < this.capacity) break
      if (!keep.has(old)) this.resident.delete(old)
    }
    const b = this.blocks[k]
    const data = this.read(b.split, b.lo, b.hi)
    this.bytesRead += data.byteLength
    this.resident.set(k, data)
    return data
  }
}

/** Default of data.memory_budget_mb. */
export const DEFAULT_MEMORY_BUDGET_MB = 2048
/** One array read into memory stays below this (typed arrays and Buffers cap at 4 GiB, a read at 2 GiB). */
export const MAX_IN_MEMORY_BYTES = 2 ** 31

/** data.memory_budget_mb in bytes (its default when unset). */
export function memoryBudgetBytes(mb: number | null | undefined): number {
  return (mb ?? DEFAULT_MEMORY_BUDGET_MB) * 2 ** 20
}

/** Whether data of these per-split sizes is streamed from disk rather than read into memory. */
export function streamsFromDisk(splitBytes: number[], budgetBytes: number): boolean {
  return splitBytes.reduce((a, b) => a + b, 0) > budgetBytes || splitBytes.some((b) => b >= MAX_IN_MEMORY_BYTES)
}

/** Trajectories per block for a byte budget; a UserError naming the knobs when one does not fit. */
export function trajectoriesPerBlock(bytesPerTrajectory: number, budgetBytes: number, what: string): number {
  // Two blocks are resident on each thread that reads (the current one and the next); one read
  // stays at most 1 GiB (Node caps a Buffer at 4 GiB and a file read at 2 GiB).
  const perBlock = Math.floor(budgetBytes / 4 / bytesPerTrajectory)
  if (perBlock >= 1) return Math.max(1, Math.min(perBlock, Math.floor(2 ** 30 / bytesPerTrajectory)))
  const mb = (b: number): string => (b / 2 ** 20).toFixed(1)
  throw new UserError(
    `One trajectory of ${what} takes ${mb(bytesPerTrajectory)} MB; streaming needs four to fit the memory budget (data.memory_budget_mb ${mb(budgetBytes)} MB).`,
    {
      code: 'TRAIN_MEMORY_BUDGET',
      hint: `Raise data.memory_budget_mb to at least ${Math.ceil((4 * bytesPerTrajectory) / 2 ** 20)}, or make each trajectory smaller: a larger training.time_stride${what.includes('latent') ? ' or training.latent_cache_dtype float16' : ''}.`,
      exitCode: ExitCode.USAGE,
    },
  )
}
