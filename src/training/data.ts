/**
 * Training data: every trajectory of each (task, split), normalised with the TRAIN statistics,
 * after the time stride. When a task has no val split, a fixed, seeded fraction of its train
 * trajectories is held out for early stopping instead (never the training loss).
 * When all of it fits data.memory_budget_mb it is read into RAM once; otherwise it is streamed:
 * each split stays open and blocks of consecutive trajectories are read when training needs them
 * (blocks.ts), so memory is bounded by the budget, not by the data.
 */
import {stat} from 'node:fs/promises'
import {basename} from 'node:path'

import {currentDataSource, type DataSource, type Dataset, emptySplitError, type NormStats, listShards, loadOrComputeNormStats, openDataset} from '../data/index.js'
import {ExitCode, UserError} from '../util/errors.js'
import {BlockCache, memoryBudgetBytes, planBlocks, streamsFromDisk, trajectoriesPerBlock} from './blocks.js'

export {DEFAULT_MEMORY_BUDGET_MB} from './blocks.js'
import {Rng} from './rng.js'

/** Default of data.memory_budget_mb. */
/** A split read into one array must stay below this (typed arrays and Buffers cap at 4 GiB). */

/** Where a streamed split's frames come from (plain data: it crosses to worker threads). */
export interface FrameStream {
  root: string
  timeStride: number
  normalize: {mean: number[]; std: number[]}
  /** data.file / data.raw_split: a worker thread has no withDataSource context, so it travels here. */
  source: DataSource
}

export interface SplitData {
  task: string
  split: string
  /** [n, frames, ...grid, C] channels-last, normalised; empty when the split is streamed. */
  data: Float32Array
  n: number
  frames: number
  /** Set when the split is streamed from its files instead of held in `data`. */
  stream?: FrameStream
  /** The files it was read from (names, sizes, mtimes) and how: part of the latent cache's key. */
  identity?: string
}

/** A list of trajectories: (split, trajectory index) pairs. */
export type TrajectoryRef = {split: SplitData; index: number}

export interface TrainingData {
  tasks: string[]
  gridShape: number[]
  channels: number
  frames: number
  /** Floats per frame: prod(grid) * C. */
  frameSize: number
  /** Time between consecutive frames fed to the operator. */
  dt: number
  normStats: Record<string, NormStats>
  splits: SplitData[]
  train: TrajectoryRef[]
  val: TrajectoryRef[]
  /** Where validation comes from, for the log. */
  valSource: string
  /** data.memory_budget_mb in bytes. */
  memoryBudgetBytes?: number
  /** Trajectories per streamed block; absent when the frames are in memory. */
  blockTrajectories?: number
}

export interface LoadDataOptions {
  root: string
  tasks: string[]
  timeStride: number
  maxSamples: number | null
  /** training.dt; null: the data's own frame spacing. */
  dt: number | null
  valFraction: number
  seed: number
  /** data.memory_budget_mb (default DEFAULT_MEMORY_BUDGET_MB). */
  memoryBudgetMb?: number | null
}

/** Open datasets of streamed splits in this thread, by streamKey. */
const openStreams = new Map<string, Dataset>()
const streamKey = (s: SplitData): string => JSON.stringify([s.stream!.root, s.task, s.split, s.stream!.timeStride])

/** Opens the files of streamed splits in this thread (a worker replica calls this before reading). */
export async function openFrameStreams(splits: SplitData[]): Promise<void> {
  for (const s of splits) {
    if (!s.stream || openStreams.has(streamKey(s))) continue
    openStreams.set(streamKey(s), await openDataset(s.stream.root, s.task, s.split, {timeStride: s.stream.timeStride, normalize: s.stream.normalize, source: s.stream.source}))
  }
}

/** Closes every streamed split opened in this thread. */
export function closeFrameStreams(): void {
  for (const ds of openStreams.values()) ds.close()
  openStreams.clear()
}

/** Trajectories [lo, hi) of a split, normalised: from memory, or read from its files. */
export function readTrajectories(s: SplitData, lo: number, hi: number): Float32Array {
  if (!s.stream) {
    const per = s.data.length / Math.max(1, s.n)
    return s.data.subarray(lo * per, hi * per)
  }
  const ds = openStreams.get(streamKey(s))
  if (!ds) throw new Error(`internal error: ${s.task} ${s.split} is streamed but its files are not open in this thread`)
  return ds.readSamples(lo, hi).data
}

export async function loadTrainingData(o: LoadDataOptions): Promise<TrainingData> {
  const splits: SplitData[] = []
  const normStats: Record<string, NormStats> = {}
  const train: TrajectoryRef[] = []
  const val: TrajectoryRef[] = []
  const valSources: string[] = []
  let shape: {grid: number[]; channels: number; frames: number} | null = null
  let dtFromData: number | null = null
  const budget = memoryBudgetBytes(o.memoryBudgetMb)
  // Sizes first: the data is read into memory only when all of it fits the budget.
  const sizes = await splitSizes(o)
  const stream = streamsFromDisk(sizes.map((b) => b.bytes), budget)
  for (const task of o.tasks) {
    const stats = await loadOrComputeNormStats(o.root, task)
    const {cached: _c, ...plain} = stats
    normStats[task] = plain
    const bySplit: Record<string, SplitData> = {}
    for (const split of ['train', 'val', 'test']) {
      if ((await listShards(o.root, task, split)).length === 0) continue
      const ds = await openDataset(o.root, task, split, {timeStride: o.timeStride, normalize: stats})
      try {
        if (ds.numSamples === 0) throw emptySplitError(task, split, o.root)
        const n = o.maxSamples ? Math.min(o.maxSamples, ds.numSamples) : ds.numSamples
        const here = {grid: ds.spatialShape, channels: ds.channels, frames: ds.numFrames}
        if (shape && (shape.grid.join() !== here.grid.join() || shape.channels !== here.channels || shape.frames !== here.frames)) {
          throw new UserError(
            `${task} ${split} has frames x grid x channels ${here.frames} x ${here.grid.join('x')} x ${here.channels}, unlike ${shape.frames} x ${shape.grid.join('x')} x ${shape.channels} of the other data.`,
            {code: 'TRAIN_DATA_SHAPE', hint: 'Multi-task training needs tasks with the same grid, channels and frame count.', exitCode: ExitCode.USAGE},
          )
        }
        shape = here
        if (ds.t && ds.t.length > 1 && dtFromData === null) dtFromData = ds.t[1] - ds.t[0]
        const identity = await dataIdentity(ds.files, {task, split, n, timeStride: o.timeStride})
        if (stream) {
          bySplit[split] = {task, split, data: new Float32Array(0), n, frames: ds.numFrames, stream: {root: o.root, timeStride: o.timeStride, normalize: {mean: plain.mean, std: plain.std}, source: currentDataSource()}, identity}
          openStreams.set(streamKey(bySplit[split]), ds)
        } else {
          const {data} = ds.readSamples(0, n)
          bySplit[split] = {task, split, data, n, frames: ds.numFrames, identity}
        }
        splits.push(bySplit[split])
      } finally {
        // A streamed split keeps its files open for training (closeFrameStreams closes them).
        if (!bySplit[split]?.stream) ds.close()
      }
    }
    const tr = bySplit.train
    if (!tr) {
      throw new UserError(`No train split for task ${task} in ${o.root}.`, {
        code: 'DATA_NOT_FOUND',
        hint: `Generate it (data.generate in the config, or \`ups data generate ${task} --out ${o.root}\`) or fetch it with \`ups data fetch\`.`,
        exitCode: ExitCode.USAGE,
      })
    }
    if (bySplit.val) {
      for (let i = 0; i < tr.n; i++) train.push({split: tr, index: i})
      for (let i = 0; i < bySplit.val.n; i++) val.push({split: bySplit.val, index: i})
      valSources.push(`${task}: val split (${bySplit.val.n} trajectories)`)
    } else {
      // Seeded hold-out, the same on every resume.
      const perm = new Rng((o.seed ^ 0x3c6ef372) >>> 0).permutation(tr.n)
      const held = o.valFraction > 0 && tr.n > 1 ? Math.max(1, Math.round(tr.n * o.valFraction)) : 0
      const heldSet = new Set(perm.slice(0, held))
      for (let i = 0; i < tr.n; i++) (heldSet.has(i) ? val : train).push({split: tr, index: i})
      valSources.push(held > 0 ? `${task}: ${held} train trajectories held out (training.val_fraction ${o.valFraction})` : `${task}: none (no val split, training.val_fraction 0)`)
    }
  }
  const s = shape!
  const frameSize = s.grid.reduce((a, b) => a * b, 1) * s.channels
  const blockTrajectories = stream ? trajectoriesPerBlock(s.frames * frameSize * 4, budget, `the data (${s.frames} frames after training.time_stride ${o.timeStride})`) : undefined
  return {
    tasks: o.tasks, gridShape: s.grid, channels: s.channels, frames: s.frames, frameSize,
    dt: o.dt ?? dtFromData ?? 1, normStats, splits, train, val, valSource: valSources.join('; '),
    memoryBudgetBytes: budget, blockTrajectories,
  }
}

async function dataIdentity(files: string[], how: Record<string, unknown>): Promise<string> {
  const keys = await Promise.all(files.map(async (f) => {
    const st = await stat(f)
    return {file: basename(f), size: st.size, mtimeMs: Math.floor(st.mtimeMs)}
  }))
  return JSON.stringify({...how, files: keys})
}

/** Bytes each split takes in memory (after max_samples and the time stride), without reading it. */
async function splitSizes(o: LoadDataOptions): Promise<Array<{bytes: number}>> {
  const out: Array<{bytes: number}> = []
  for (const task of o.tasks) {
    for (const split of ['train', 'val', 'test']) {
      if ((await listShards(o.root, task, split)).length === 0) continue
      const ds = await openDataset(o.root, task, split, {timeStride: o.timeStride})
      try {
        const n = o.maxSamples ? Math.min(o.maxSamples, ds.numSamples) : ds.numSamples
        out.push({bytes: n * ds.sampleShape.reduce((a, b) => a * b, 1) * 4})
      } finally {
        ds.close()
      }
    }
  }
  return out
}

/** Trajectories of a list of refs, in memory or read a block at a time. */
export interface TrajectoryAccess {
  /** The trajectory of ref `pos` starts at `offset` of `data`. */
  trajectory(pos: number): {data: Float32Array; offset: number}
  /** Streamed only: the block cache (its order, prefetch and read counters). */
  blocks?: BlockCache
}

/** Frame access for `refs` (trajectories of `floatsPerTrajectory` values each). */
export function trajectoryAccess(
  refs: TrajectoryRef[],
  floatsPerTrajectory: number,
  source: {streamed: boolean; blockTrajectories?: number; read: (s: SplitData, lo: number, hi: number) => Float32Array; inMemory: (s: SplitData) => Float32Array},
): TrajectoryAccess {
  if (!source.streamed) {
    return {trajectory: (pos) => ({data: source.inMemory(refs[pos].split), offset: refs[pos].index * floatsPerTrajectory})}
  }
  const blocks = new BlockCache(planBlocks(refs, source.blockTrajectories ?? 1), refs.length, floatsPerTrajectory, (s, lo, hi) => source.read(s as SplitData, lo, hi))
  return {trajectory: (pos) => blocks.trajectory(pos, refs[pos].index), blocks}
}

/** The frames of `data`'s refs: streamed when the data is. */
export function frameAccess(data: TrainingData, refs: TrajectoryRef[]): TrajectoryAccess {
  return trajectoryAccess(refs, data.frames * data.frameSize, {
    streamed: data.blockTrajectories !== undefined, blockTrajectories: data.blockTrajectories,
    read: readTrajectories, inMemory: (s) => s.data,
  })
}

/** Copies frame `frame` of each ref position into one [B, frameSize] buffer. */
export function gatherFrames(access: TrajectoryAccess, items: Array<{pos: number; frame: number}>, frameSize: number): Float32Array {
  const out = new Float32Array(items.length * frameSize)
  access.blocks?.ensure(items.map((i) => i.pos))
  items.forEach(({pos, frame}, b) => {
    const {data, offset} = access.trajectory(pos)
    const start = offset + frame * frameSize
    out.set(data.subarray(start, start + frameSize), b * frameSize)
  })
  return out
}
