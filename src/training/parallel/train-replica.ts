/**
 * The recipe of a training replica: the stage's inputs with every large array in shared memory,
 * so a worker sees the stage's data without a copy (sent once per stage). The worker rebuilds the
 * same object graph and calls the same buildStage as the main thread.
 */
import type {StageName, UpsConfig} from '../../config/index.js'
import type {LatentSplit} from '../cache.js'
import {openFrameStreams, type SplitData, type TrainingData} from '../data.js'
import type {LossWeights} from '../losses.js'
import {buildStage, type StageInputs} from '../stages/index.js'
import {siblingModule} from './pool.js'
import type {ReplicaRecipe} from './protocol.js'
import type {ReplicaBuild} from './replica.js'

export interface TrainReplicaArgs {
  stage: StageName
  config: UpsConfig
  seed: number
  checkpointsDir: string
  lambdas: LossWeights
  /** The corrector stages' residual scale, as main measured or recorded it. */
  residualScale?: number
  data: Omit<TrainingData, 'splits' | 'train' | 'val'> & {
    splits: SplitData[]
    /** [split index, trajectory index] */
    train: Array<[number, number]>
    val: Array<[number, number]>
  }
  /** Aligned with data.splits (null: no latents for that split). */
  latents: Array<LatentSplit | null> | null
}

/** `a` itself when it already lives in shared memory, else a copy that does. */
export function toShared(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a
  const out = new Float32Array(new SharedArrayBuffer(a.byteLength))
  out.set(a)
  return out
}

/**
 * The recipe for `stage`. Moves the arrays the stage reads into shared memory in place (the
 * main thread then uses the shared copy, so the data is not held twice).
 */
export function trainReplicaRecipe(stage: StageName, s: StageInputs): ReplicaRecipe {
  const {data, latents} = s
  const index = new Map(data.splits.map((sp, i) => [sp, i]))
  const needsFrames = stage === 'autoencoder'
  for (const sp of data.splits) if (needsFrames) sp.data = toShared(sp.data)
  const splits = data.splits.map((sp) => ({...sp, data: needsFrames ? sp.data : new Float32Array(0)}))
  let shared: TrainReplicaArgs['latents'] = null
  if (!needsFrames && latents) {
    shared = data.splits.map((sp) => {
      const l = latents.get(sp)
      if (!l) return null
      l.data = toShared(l.data)
      return l
    })
  }
  const refs = (r: TrainingData['train']): Array<[number, number]> => r.map((t) => [index.get(t.split)!, t.index])
  const {splits: _s, train: _t, val: _v, ...meta} = data
  const args: TrainReplicaArgs = {
    stage, config: s.config, seed: s.seed, checkpointsDir: s.checkpointsDir, lambdas: s.lambdas, residualScale: s.residualScale,
    data: {...meta, splits, train: refs(data.train), val: refs(data.val)}, latents: shared,
  }
  return {module: siblingModule(import.meta.url, 'train-replica'), export: 'buildTrainReplica', args}
}

/** Worker side: the same stage spec the main thread built (frozen upstream models from their checkpoints). */
export async function buildTrainReplica(a: TrainReplicaArgs): Promise<ReplicaBuild> {
  const splits = a.data.splits
  // Streamed frames: this thread opens the files and reads its micro-batches' blocks itself.
  if (a.stage === 'autoencoder') await openFrameStreams(splits)
  const data: TrainingData = {
    ...a.data,
    splits,
    train: a.data.train.map(([s, index]) => ({split: splits[s], index})),
    val: a.data.val.map(([s, index]) => ({split: splits[s], index})),
  }
  let latents: Map<SplitData, LatentSplit> | null = null
  if (a.latents) {
    latents = new Map()
    a.latents.forEach((l, i) => l && latents!.set(splits[i], l))
  }
  return buildStage(a.stage, {config: a.config, seed: a.seed, data, latents, checkpointsDir: a.checkpointsDir, lambdas: a.lambdas, residualScale: a.residualScale})
}
