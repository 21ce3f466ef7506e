/**
 * `checkpoints/metadata.json`: what the pipeline has finished, written atomically after every
 * epoch and stage. Resume reads it to skip finished stages; loadSimulator reads the data section
 * (grid, channels, dt, normalisation statistics) to rebuild the models without the data.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {StageName} from '../config/index.js'
import {writeJsonAtomic} from '../util/fs.js'

export interface StageState {
  done: boolean
  epochs: number
  steps: number
  best_val: number | null
  best_epoch: number | null
  stopped_early: boolean
  skipped?: boolean
  config_hash: string
  /** sha256 of weights.bin of `<stage>.ckpt`, `<stage>_best.ckpt`, `<stage>_ema.ckpt`. */
  checkpoints: {last?: string; best?: string; ema?: string}
  step_time_ms?: number | null
  /** diff_residual: the operator's residual RMS the correctors' residuals are divided by. */
  residual_scale?: number
}

export interface DataState {
  tasks: string[]
  grid: number[]
  channels: number
  frames: number
  dt: number
  norm_stats: Record<string, {mean: number[]; std: number[]; channelNames?: string[]}>
  val_source: string
}

export interface PipelineState {
  version: 1
  config_hash: string
  seed: number
  data?: DataState
  latent_cache?: {dir: string; config_hash: string; autoencoder_hash: string; dtype: string; reused: string[]; rebuilt: string[]}
  stages: Partial<Record<StageName, StageState>>
}

export const PIPELINE_STATE_FILE = 'metadata.json'

export async function readPipelineState(checkpointsDir: string): Promise<PipelineState | null> {
  try {
    const s = JSON.parse(await readFile(join(checkpointsDir, PIPELINE_STATE_FILE), 'utf8')) as PipelineState
    return s?.version === 1 ? s : null
  } catch {
    return null
  }
}

export async function writePipelineState(checkpointsDir: string, state: PipelineState): Promise<void> {
  await writeJsonAtomic(join(checkpointsDir, PIPELINE_STATE_FILE), state)
}
