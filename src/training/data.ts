/**
 * Training data in memory: every trajectory of each (task, split), normalised with the TRAIN
 * statistics, after the time stride. When a task has no val split, a fixed, seeded fraction of its
 * train trajectories is held out for early stopping instead (never the training loss).
 * Everything lives in RAM: bound it with data.max_samples for the full PDEBench files.
 */
import {emptySplitError, type NormStats, listShards, loadOrComputeNormStats, openDataset} from '../data/index.js'
import {ExitCode, UserError} from '../util/errors.js'
import {Rng} from './rng.js'

export interface SplitData {
  task: string
  split: string
  /** [n, frames, ...grid, C] channels-last, normalised. */
  data: Float32Array
  n: number
  frames: number
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
}

export async function loadTrainingData(o: LoadDataOptions): Promise<TrainingData> {
  const splits: SplitData[] = []
  const normStats: Record<string, NormStats> = {}
  const train: TrajectoryRef[] = []
  const val: TrajectoryRef[] = []
  const valSources: string[] = []
  let shape: {grid: number[]; channels: number; frames: number} | null = null
  let dtFromData: number | null = null
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
        const {data} = ds.readSamples(0, n)
        bySplit[split] = {task, split, data, n, frames: ds.numFrames}
        splits.push(bySplit[split])
      } finally {
        ds.close()
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
  return {
    tasks: o.tasks, gridShape: s.grid, channels: s.channels, frames: s.frames, frameSize,
    dt: o.dt ?? dtFromData ?? 1, normStats, splits, train, val, valSource: valSources.join('; '),
  }
}

/** Copies frame `f` of each (trajectory, frame) into one [B, frameSize] buffer. */
export function gatherFrames(refs: Array<{traj: TrajectoryRef; frame: number}>, frameSize: number): Float32Array {
  const out = new Float32Array(refs.length * frameSize)
  refs.forEach(({traj, frame}, b) => {
    const start = (traj.index * traj.split.frames + frame) * frameSize
    out.set(traj.split.data.subarray(start, start + frameSize), b * frameSize)
  })
  return out
}
