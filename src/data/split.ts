/**
 * One raw PDEBench file split into train/val/test by sample index, deterministically.
 *
 * Default (seed null): contiguous ranges, as PDEBench's own loaders do (the last 10% is test):
 * train [0, nTrain), val [nTrain, nTrain + nVal), test [N - nTest, N). The release's samples are
 * independent draws of the initial condition, so their order carries no bias, and each split
 * reads as one block. With an integer seed: a seeded permutation of all indices (test first, then
 * val, the rest train), each split's indices sorted so reads stay in file order (one sample of
 * the 1D files is ~0.8 MB contiguous, so per-sample reads cost little). The plan depends only on
 * (N, val, test, seed): the same everywhere, every run.
 */
import {ExitCode, UserError} from '../util/errors.js'
import type {Dataset, ReadOptions, SampleBatch} from './pdebench.js'

export interface RawSplitSpec {
  /** Fraction of the samples for validation. */
  val: number
  /** Fraction of the samples for test. */
  test: number
  /** null: contiguous ranges; an integer: a seeded permutation. */
  seed: number | null
}

export const DEFAULT_RAW_SPLIT: RawSplitSpec = {val: 0.05, test: 0.1, seed: null}

export type RawSplitName = 'train' | 'val' | 'test'

/** [start, end) sample ranges, ascending and disjoint. */
export type IndexRanges = Array<[number, number]>

export interface RawSplitPlan {
  total: number
  spec: RawSplitSpec
  method: 'contiguous' | 'seeded-permutation'
  ranges: Record<RawSplitName, IndexRanges>
  counts: Record<RawSplitName, number>
}

/** What a split view of a raw file is (on Dataset, in the run metadata, in validation). */
export interface RawSplitInfo {
  file: string
  split: RawSplitName
  total: number
  ranges: IndexRanges
  spec: RawSplitSpec
  method: RawSplitPlan['method']
}

export function normalizeSplitName(split: string): RawSplitName {
  if (split === 'valid') return 'val'
  if (split === 'train' || split === 'val' || split === 'test') return split
  throw new UserError(`Unknown split "${split}".`, {code: 'DATA_UNKNOWN_SPLIT', hint: 'Use train, val (or valid) or test.', exitCode: ExitCode.USAGE})
}

/** The config's (possibly partial) spec with the defaults filled in. */
export function fullSplitSpec(partial: Partial<RawSplitSpec> = {}): RawSplitSpec {
  return {
    val: partial.val ?? DEFAULT_RAW_SPLIT.val,
    test: partial.test ?? DEFAULT_RAW_SPLIT.test,
    seed: partial.seed === undefined ? DEFAULT_RAW_SPLIT.seed : partial.seed,
  }
}

export function planRawSplit(total: number, partial: Partial<RawSplitSpec> = {}): RawSplitPlan {
  const spec = fullSplitSpec(partial)
  const bad = (m: string) => new UserError(m, {code: 'DATA_BAD_SPLIT', hint: 'Set data.raw_split.val and data.raw_split.test to fractions that leave samples for training, e.g. {val: 0.05, test: 0.1}.', exitCode: ExitCode.USAGE})
  for (const k of ['val', 'test'] as const) {
    if (!(spec[k] >= 0 && spec[k] < 1)) throw bad(`data.raw_split.${k} must be a fraction in [0, 1) (got ${spec[k]}).`)
  }
  if (spec.seed !== null && !Number.isInteger(spec.seed)) throw bad(`data.raw_split.seed must be an integer or null (got ${spec.seed}).`)
  // A non-zero fraction gets at least one sample, so a small file still has every split.
  const count = (f: number) => (f > 0 ? Math.max(1, Math.round(total * f)) : 0)
  const nTest = count(spec.test)
  const nVal = count(spec.val)
  const nTrain = total - nTest - nVal
  if (nTrain < 1) throw bad(`the raw file has ${total} sample(s): val ${nVal} + test ${nTest} leave none for training.`)
  let ranges: Record<RawSplitName, IndexRanges>
  if (spec.seed === null) {
    ranges = {train: [[0, nTrain]], val: nVal ? [[nTrain, nTrain + nVal]] : [], test: nTest ? [[total - nTest, total]] : []}
  } else {
    const perm = seededPermutation(total, spec.seed)
    const pick = (a: number, b: number) => toRanges(Array.from(perm.subarray(a, b)).sort((x, y) => x - y))
    ranges = {test: pick(0, nTest), val: pick(nTest, nTest + nVal), train: pick(nTest + nVal, total)}
  }
  return {total, spec, method: spec.seed === null ? 'contiguous' : 'seeded-permutation', ranges, counts: {train: nTrain, val: nVal, test: nTest}}
}

/** Fisher-Yates with a small counter-based generator (splitmix32): stable across versions. */
function seededPermutation(n: number, seed: number): Uint32Array {
  const perm = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[i] = i
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296
  }
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    const t = perm[i]
    perm[i] = perm[j]
    perm[j] = t
  }
  return perm
}

/** Sorted indices -> [start, end) ranges. */
function toRanges(sorted: number[]): IndexRanges {
  const out: IndexRanges = []
  for (const i of sorted) {
    const last = out[out.length - 1]
    if (last && last[1] === i) last[1]++
    else out.push([i, i + 1])
  }
  return out
}

/** Whether two ascending range lists share an index; the first shared range when they do. */
export function rangesOverlap(a: IndexRanges, b: IndexRanges): [number, number] | null {
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i][0], b[j][0])
    const hi = Math.min(a[i][1], b[j][1])
    if (lo < hi) return [lo, hi]
    if (a[i][1] < b[j][1]) i++
    else j++
  }
  return null
}

export function formatRanges(ranges: IndexRanges, max = 4): string {
  const shown = ranges.slice(0, max).map(([a, b]) => `[${a}, ${b})`).join(' ')
  return ranges.length > max ? `${shown} ... (${ranges.length} ranges)` : shown || 'none'
}

/**
 * The samples `ranges` of `base` as a Dataset of their own: view index i is the i-th index of the
 * ranges. Reads go to the base one contiguous range at a time (its raw path, its read budget).
 */
export function splitView(base: Dataset, info: RawSplitInfo): Dataset {
  const starts: number[] = []
  let count = 0
  for (const [a, b] of info.ranges) {
    starts.push(count)
    count += b - a
  }
  const sampleSize = base.sampleShape.reduce((p, n) => p * n, 1)
  const view: Dataset = {
    ...base,
    split: info.split,
    numSamples: count,
    rawSplit: info,
    readSamples(start: number, end: number, options: ReadOptions = {}): SampleBatch {
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > count || start > end) {
        throw new UserError(`sample range [${start}, ${end}) is outside [0, ${count}).`, {code: 'DATA_BAD_REQUEST', exitCode: ExitCode.USAGE})
      }
      const need = (end - start) * sampleSize
      if (options.out && options.out.length < need) {
        throw new UserError(`the output buffer holds ${options.out.length} values; ${need} are needed.`, {code: 'DATA_BAD_REQUEST', exitCode: ExitCode.USAGE})
      }
      const out = options.out ? options.out.subarray(0, need) : new Float32Array(Buffer.allocUnsafeSlow(need * 4).buffer, 0, need)
      // The range holding `start` (binary search), then range by range.
      let r = 0
      for (let lo = 0, hi = starts.length - 1; lo <= hi;) {
        const mid = (lo + hi) >> 1
        if (starts[mid] <= start) {
          r = mid
          lo = mid + 1
        } else hi = mid - 1
      }
      for (let v = start; v < end; r++) {
        const phys = info.ranges[r][0] + (v - starts[r])
        const take = Math.min(end - v, info.ranges[r][1] - phys)
        base.readSamples(phys, phys + take, {patchOrigin: options.patchOrigin, out: out.subarray((v - start) * sampleSize)})
        v += take
      }
      return {data: out, shape: [end - start, ...base.sampleShape]}
    },
    *batches(batchSize: number, range: {start?: number; end?: number} = {}) {
      const s0 = range.start ?? 0
      const s1 = range.end ?? count
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer (got ${batchSize}).`, {code: 'DATA_BAD_REQUEST', exitCode: ExitCode.USAGE})
      for (let a = s0; a < s1; a += batchSize) {
        const b = Math.min(s1, a + batchSize)
        yield {...view.readSamples(a, b), start: a, end: b}
      }
    },
    close() {
      base.close()
    },
  }
  // readStats is the base's live object (a getter would be lost by the spread above).
  view.readStats = base.readStats
  return view
}
