/**
 * The raw read path: hyperslabs of a little-endian float32 dataset read with plain `readSync`
 * straight into the caller's Float32Array (one copy, from the page cache), using the data
 * addresses that h5-raw-parse.ts found in the file. Whole samples of a contiguous dataset are
 * one syscall; strided or cropped selections read each run, or gather runs that lie close
 * together from one read into a scratch buffer. Any surprise returns false so the caller uses
 * the HDF5 library instead.
 */
import {closeSync, fstatSync, openSync, readSync} from 'node:fs'
import {endianness} from 'node:os'

import {type RawLocation, locateDataset} from './h5-raw-parse.js'

export {locateDataset, type RawLocation} from './h5-raw-parse.js'

/** [start, stop(, step)] or [] (everything) per dimension, as h5wasm takes them. */
export type SliceRange = [number, number] | [number, number, number] | []

/** Runs closer than this are read together and gathered (page-cache reads are cheap; syscalls are not). */
const GATHER_GAP_BYTES = 256 * 1024
/** Runs longer than this are read straight into the output, never gathered. */
const GATHER_MAX_RUN_BYTES = 64 * 1024
/** The largest single read into the scratch buffer. */
const SCRATCH_MAX_BYTES = 16 * 1024 * 1024
/** Node's readSync moves at most this many bytes per call. */
const MAX_READ = 0x7fff_f000

const LITTLE_ENDIAN_HOST = endianness() === 'LE'

export interface RawFile {
  path: string
  /** Reads the hyperslab into out[at...]: the number of values written, or -1 when not handled. */
  readInto(dataset: string, ranges: SliceRange[], out: Float32Array, at: number): number
  /** Where a dataset lies (cached), or null when the raw path does not handle it. */
  locate(dataset: string): RawLocation | null
  close(): void
}

/** Opens `path` for raw reads; null when it cannot be opened or the host is big-endian. */
export function openRawFile(path: string): RawFile | null {
  if (!LITTLE_ENDIAN_HOST) return null
  let fd: number
  let size: number
  try {
    fd = openSync(path, 'r')
    size = fstatSync(fd).size
  } catch {
    return null
  }
  let closed = false
  const readAt = (offset: number, length: number): Buffer => {
    if (offset < 0 || length < 0 || offset + length > size) throw new Error('read past the end of the file')
    const buf = Buffer.alloc(length)
    if (!readFully(fd, buf, offset)) throw new Error('short read')
    return buf
  }
  const locations = new Map<string, RawLocation | null>()
  const groups = new Map<number, Map<string, number> | null>()
  let scratch = new Uint8Array(0)
  const file: RawFile = {
    path,
    locate(dataset) {
      if (closed) return null
      if (!locations.has(dataset)) locations.set(dataset, locateDataset(readAt, size, dataset, groups))
      return locations.get(dataset) ?? null
    },
    readInto(dataset, ranges, out, at) {
      const loc = file.locate(dataset)
      if (!loc) return -1
      const plan = planRuns(loc, ranges)
      if (!plan) return -1
      if (at + plan.total > out.length) return -1
      try {
        for (const group of plan.groups) {
          const first = group[0]
          const last = group[group.length - 1]
          if (group.length === 1) {
            const view = new Uint8Array(out.buffer, out.byteOffset + (at + first.out) * 4, first.n * 4)
            if (!readFully(fd, view, first.file)) return -1
            continue
          }
          const span = last.file + last.n * 4 - first.file
          if (scratch.length < span) scratch = new Uint8Array(Math.max(span, Math.min(SCRATCH_MAX_BYTES, scratch.length * 2)))
          if (!readFully(fd, scratch.subarray(0, span), first.file)) return -1
          const floats = new Float32Array(scratch.buffer, 0, scratch.length >> 2)
          for (const r of group) {
            const s = (r.file - first.file) >> 2
            out.set(floats.subarray(s, s + r.n), at + r.out)
          }
        }
      } catch {
        return -1
      }
      return plan.total
    },
    close() {
      if (closed) return
      closed = true
      closeSync(fd)
    },
  }
  return file
}

function readFully(fd: number, view: Uint8Array, position: number): boolean {
  let done = 0
  while (done < view.length) {
    const n = readSync(fd, view, done, Math.min(MAX_READ, view.length - done), position + done)
    if (n <= 0) return false
    done += n
  }
  return true
}

/** One contiguous byte run: n floats at file byte `file`, going to out index `out` (relative). */
export interface Run {
  file: number
  out: number
  n: number
}

/**
 * The reads for a selection: its runs, grouped so that each group is read with one syscall.
 * null when a chunk the selection needs was never written (the library supplies fill values).
 */
export function planRuns(loc: RawLocation, ranges: SliceRange[]): {total: number; groups: Run[][]} | null {
  const rank = loc.shape.length
  if (ranges.length > rank) return null
  const lo: number[] = []
  const step: number[] = []
  const count: number[] = []
  for (let d = 0; d < rank; d++) {
    const r = ranges[d] ?? []
    const n = loc.shape[d]
    const a = Math.max(0, Math.min(n, r[0] ?? 0))
    const b = Math.min(n, r[1] ?? n)
    const s = r[2] ?? 1
    if (!Number.isInteger(s) || s < 1) return null
    lo.push(a)
    step.push(s)
    count.push(b > a ? Math.ceil((b - a) / s) : 0)
  }
  const total = count.reduce((p, c) => p * c, 1)
  const runs: Run[] = []
  if (total === 0) return {total, groups: []}
  const outStride = strides(count)
  const cs = loc.chunkShape
  const chunkStride = strides(cs)
  // Chunk grid cells the selection touches, per dimension.
  const cellLo = lo.map((a, d) => Math.floor(a / cs[d]))
  const cellHi = lo.map((a, d) => Math.floor((a + (count[d] - 1) * step[d]) / cs[d]))
  const cell = [...cellLo]
  for (;;) {
    const origin = cell.map((c, d) => c * cs[d])
    const chunk = loc.chunks.get(origin.join())
    // Selection indices k with lo + k*step inside this chunk, per dimension.
    const kA: number[] = []
    const kB: number[] = []
    let empty = false
    for (let d = 0; d < rank; d++) {
      const first = Math.max(0, Math.ceil((origin[d] - lo[d]) / step[d]))
      const last = Math.min(count[d], Math.ceil((origin[d] + cs[d] - lo[d]) / step[d]))
      kA.push(first)
      kB.push(last)
      if (last <= first) empty = true
    }
    if (!empty) {
      if (!chunk) return null
      // A run covers dims [runDims, rank): merge a dimension into it while the one inside it is
      // whole in both the chunk and the selection and both are unit-stride.
      let runDims = rank
      let runLen = 1
      if (step[rank - 1] === 1) {
        runDims = rank - 1
        runLen = kB[runDims] - kA[runDims]
        const whole = (d: number) => kB[d] - kA[d] === cs[d] && kB[d] - kA[d] === count[d]
        while (runDims > 0 && whole(runDims) && step[runDims - 1] === 1) {
          runDims--
          runLen *= kB[runDims] - kA[runDims]
        }
      }
      emitRuns(runs, chunk.address, origin, lo, step, kA, kB, runDims, runLen, outStride, chunkStride)
    }
    let d = rank - 1
    while (d >= 0 && cell[d] === cellHi[d]) {
      cell[d] = cellLo[d]
      d--
    }
    if (d < 0) break
    cell[d]++
  }
  runs.sort((x, y) => x.file - y.file)
  return {total, groups: groupRuns(runs)}
}

/** Enumerates the runs of one chunk: every index over dims [0, runDims) (the run covers the rest). */
function emitRuns(
  runs: Run[], address: number, origin: number[], lo: number[], step: number[], kA: number[], kB: number[],
  runDims: number, runLen: number, outStride: number[], chunkStride: number[],
): void {
  const k = kA.slice(0, runDims)
  const rank = lo.length
  for (;;) {
    let fileIdx = 0
    let outIdx = 0
    for (let d = 0; d < rank; d++) {
      const kd = d < runDims ? k[d] : kA[d]
      fileIdx += (lo[d] + kd * step[d] - origin[d]) * chunkStride[d]
      outIdx += kd * outStride[d]
    }
    runs.push({file: address + fileIdx * 4, out: outIdx, n: runLen})
    let d = runDims - 1
    while (d >= 0 && k[d] === kB[d] - 1) {
      k[d] = kA[d]
      d--
    }
    if (d < 0) return
    k[d]++
  }
}

function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length).fill(1)
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1] * shape[d + 1]
  return s
}

/**
 * Runs adjacent in both the file and the output become one (chunks written in order read as a
 * single block); then small runs with small gaps between them share one read into scratch.
 * Large runs are read on their own, straight into the output.
 */
function groupRuns(sorted: Run[]): Run[][] {
  const runs: Run[] = []
  for (const r of sorted) {
    const prev = runs[runs.length - 1]
    if (prev && r.file === prev.file + prev.n * 4 && r.out === prev.out + prev.n) prev.n += r.n
    else runs.push({...r})
  }
  const groups: Run[][] = []
  let cur: Run[] = []
  let start = 0
  for (const r of runs) {
    const prev = cur[cur.length - 1]
    const small = r.n * 4 <= GATHER_MAX_RUN_BYTES && (!prev || prev.n * 4 <= GATHER_MAX_RUN_BYTES)
    const gap = prev ? r.file - (prev.file + prev.n * 4) : -1
    // Gathered runs are copied out of scratch as float32 views: they must share 4-byte alignment
    // (chunks may sit at any byte address).
    const aligned = (r.file - start) % 4 === 0
    if (prev && small && aligned && gap >= 0 && gap <= GATHER_GAP_BYTES && r.file + r.n * 4 - start <= SCRATCH_MAX_BYTES) {
      cur.push(r)
      continue
    }
    if (cur.length) groups.push(cur)
    cur = [r]
    start = r.file
  }
  if (cur.length) groups.push(cur)
  return groups
}
