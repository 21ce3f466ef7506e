/**
 * What a pipeline run records in its metadata.json (on top of the run directory's own keys):
 * enough for `ups resume` to know what is done and to rerun with the same options.
 * Every update is a whole-file atomic rewrite (tracking's updateMetadata).
 */
import type {RunDir, RunMetadata} from '../tracking/rundir.js'
import {readMetadata, updateMetadata} from '../tracking/rundir.js'

export const PIPELINE_SCHEMA_VERSION = 1

export const PIPELINE_STEPS = ['validate', 'data_check', 'dry_run', 'train', 'small_eval', 'small_gate', 'full_eval', 'full_gate', 'leaderboard', 'report'] as const
export type PipelineStep = (typeof PIPELINE_STEPS)[number]

export interface StepRecord {
  status: 'done' | 'skipped' | 'failed'
  at: string
  detail: string
}

export interface EvalRecord {
  metrics: Record<string, number>
  results_path: string
  config: string
  split: string
}

export interface GateRecord {
  passed: boolean
  reason: string
  baseline: string | null
}

/** The options a run was started with; resume reuses them. */
export interface PipelineRunOptions {
  trainConfig: string
  smallEvalConfig?: string
  fullEvalConfig?: string
  overrides: string[]
  skipValidation: boolean
  skipDataCheck: boolean
  skipDryRun: boolean
  skipTraining: boolean
  forceTrain: boolean
  skipSmallEval: boolean
  skipFullEval: boolean
  redoSmallEval: boolean
  redoFullEval: boolean
  tags: Record<string, string>
  notes?: string
  minSmallDelta: number
  minFullDelta: number
  improvementMetric: string
  gateRatios: Record<string, number>
  leaderboardCsv: string
  leaderboardHtml: string | null
  wandbMode: 'online' | 'offline' | 'disabled'
  leaderboardWandb: boolean
  /** W&B project/entity of the leaderboard run (default: the config's logging.wandb). */
  leaderboardWandbProject?: string
  leaderboardWandbEntity?: string
  strictExit: boolean
  /** Target GPU for the dry-run estimate (default: 'local', this machine). */
  gpu?: string
}

export interface PipelineMetadata extends RunMetadata {
  schema_version: number
  config_hash: string
  arch: Record<string, unknown>
  trained: boolean
  trained_at: string | null
  last_small_eval: EvalRecord | null
  last_small_eval_at: string | null
  last_full_eval: EvalRecord | null
  last_full_eval_at: string | null
  training_wandb: Record<string, unknown> | null
  steps: Partial<Record<PipelineStep, StepRecord>>
  gates: {small?: GateRecord; full?: GateRecord}
  options: PipelineRunOptions
  tags: Record<string, string>
  notes: string | null
}

export async function readPipelineMetadata(dir: RunDir): Promise<PipelineMetadata> {
  const m = (await readMetadata(dir)) as Partial<PipelineMetadata>
  return {
    trained: false,
    trained_at: null,
    last_small_eval: null,
    last_small_eval_at: null,
    last_full_eval: null,
    last_full_eval_at: null,
    training_wandb: null,
    steps: {},
    gates: {},
    tags: {},
    notes: null,
    ...m,
  } as PipelineMetadata
}

export async function patchMetadata(dir: RunDir, patch: Partial<PipelineMetadata>): Promise<PipelineMetadata> {
  return (await updateMetadata(dir, patch as Record<string, unknown>)) as PipelineMetadata
}

/** Records one step's outcome (read-modify-write of the steps map). */
export async function recordStep(dir: RunDir, step: PipelineStep, record: StepRecord, extra: Partial<PipelineMetadata> = {}): Promise<PipelineMetadata> {
  const current = await readPipelineMetadata(dir)
  return patchMetadata(dir, {...extra, steps: {...current.steps, [step]: record}})
}
