/** What every training stage hands the shared epoch loop (loop.ts). */
import type * as tf from '@tensorflow/tfjs'

import type {StageName} from '../../config/index.js'
import type {ParamStore} from '../params.js'
import type {Rng} from '../rng.js'

export interface LossClosure {
  fn: () => tf.Scalar
  /** Frees tensors the closure kept (inputs, stop-gradient targets). */
  dispose(): void
}

export interface StageSpec {
  stage: StageName
  /** The trainable parameters of this stage's model (frozen upstream models live elsewhere). */
  store: ParamStore
  /** Training items (frames or latent pairs); the loop shuffles their indices per epoch. */
  trainItems: number
  /** Validation items; 0 means there is nothing to stop early on. */
  valItems: number
  /** Builds the loss of one training micro-batch; all randomness comes from `rng`. */
  trainLoss(indices: number[], rng: Rng): LossClosure
  /**
   * Mean validation loss of a batch (no gradients, eval mode); `rng` is a fixed per-pass stream.
   * Read asynchronously: webgpu under Node has no synchronous reads.
   */
  valLoss(indices: number[], rng: Rng): number | Promise<number>
  /**
   * Streamed data only: the epoch's item order (blocks of trajectories in a seeded order, items
   * shuffled within each), drawn from `rng` in place of a plain permutation of trainItems.
   */
  epochOrder?(rng: Rng): number[]
  /** Streamed data only: reads what the items `ahead` need while the step of `current` runs. */
  prefetch?(ahead: number[], current: number[]): Promise<void>
  dispose(): void
}

export interface EpochRecord {
  stage: StageName
  epoch: number
  epochs: number
  metrics: Record<string, number | null>
  globalStep: number
  /** Optimizer steps of this stage so far. */
  step: number
  bestEpoch: number | null
  /** Mean milliseconds per optimizer step this epoch. */
  stepTimeMs: number
  improved: boolean
  stoppedEarly: boolean
}

export interface StageProgress {
  stage: StageName
  epoch: number
  epochs: number
  step: number
  steps: number
  /** Training items (frames or latent pairs) done so far in this epoch, and in the whole epoch. */
  items?: number
  totalItems?: number
  /** Milliseconds since the epoch started. */
  elapsedMs?: number
}
