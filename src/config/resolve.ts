/**
 * Derived values: what a stage actually trains with once top-level and per-stage settings are
 * merged and defaults filled in, and the hashes that decide whether checkpoints and caches can
 * be reused. Kept out of the schema so the schema stays a plain description of the YAML.
 */
import {canonicalJson, sha256} from '../util/hash.js'
import type {DataSource} from '../data/source.js'
import type {OptimizerSettings, SchedulerSettings, StageName, UpsConfig} from './schema.js'

export interface ResolvedOptimizer {
  name: 'adam' | 'adamw' | 'sgd'
  lr: number
  weight_decay: number
  betas: [number, number]
  eps: number
  momentum: number
}

export interface ResolvedStage {
  stage: StageName
  epochs: number
  enabled: boolean
  optimizer: ResolvedOptimizer
  scheduler: SchedulerSettings & {name: NonNullable<SchedulerSettings['name']>}
  patience: number
  grad_clip: number | null
  ema_decay: number | null
  batch_size: number
  accum_steps: number
}

export const DEFAULT_OPTIMIZER: ResolvedOptimizer = {name: 'adamw', lr: 1e-3, weight_decay: 0.01, betas: [0.9, 0.999], eps: 1e-8, momentum: 0.9}

/** Stages run in this order; the autoencoder is ours (upstream used an untrained encoder). */
export const DEFAULT_STAGE_EPOCHS: Record<StageName, number> = {
  autoencoder: 10,
  operator: 0,
  diff_residual: 0,
  consistency_distill: 0,
  steady_prior: 0,
}

export function resolveStage(config: UpsConfig, stage: StageName): ResolvedStage {
  const s = config.stages?.[stage] ?? {}
  const t = config.training ?? {}
  const optimizer: ResolvedOptimizer = {...DEFAULT_OPTIMIZER, ...definedOnly(config.optimizer), ...definedOnly(s.optimizer)} as ResolvedOptimizer
  const scheduler = {name: 'none' as const, ...definedOnly(config.scheduler), ...definedOnly(s.scheduler)}
  const epochs = s.epochs ?? DEFAULT_STAGE_EPOCHS[stage]
  return {
    stage,
    epochs,
    enabled: epochs > 0,
    optimizer,
    scheduler: scheduler as ResolvedStage['scheduler'],
    patience: s.patience ?? t.patience ?? 10,
    grad_clip: s.grad_clip !== undefined ? s.grad_clip : (t.grad_clip ?? null),
    ema_decay: s.ema_decay !== undefined ? s.ema_decay : (t.ema_decay ?? null),
    batch_size: s.batch_size ?? t.batch_size ?? 16,
    accum_steps: s.accum_steps ?? t.accum_steps ?? 1,
  }
}

function definedOnly<T extends OptimizerSettings | SchedulerSettings | undefined>(o: T): Partial<NonNullable<T>> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<NonNullable<T>>
}

/** Architecture with the "must equal latent.dim" fields filled in. */
export function resolveArchitecture(config: UpsConfig) {
  const pdet = config.operator.pdet
  const diffusion = config.diffusion ?? {}
  return {
    latent: {dim: config.latent.dim, tokens: config.latent.tokens},
    pdet: {
      input_dim: pdet.input_dim ?? config.latent.dim,
      hidden_dim: pdet.hidden_dim,
      depths: pdet.depths,
      group_size: pdet.group_size,
      num_heads: pdet.num_heads,
      mlp_ratio: pdet.mlp_ratio ?? 2,
      dropout: pdet.dropout ?? 0,
    },
    diffusion: {
      latent_dim: diffusion.latent_dim ?? config.latent.dim,
      hidden_dim: diffusion.hidden_dim ?? pdet.hidden_dim,
      num_layers: diffusion.num_layers ?? 3,
      time_embed_dim: diffusion.time_embed_dim ?? 64,
      dropout: diffusion.dropout ?? 0,
    },
    autoencoder: {
      hidden_dim: config.autoencoder?.hidden_dim ?? 128,
      num_layers: config.autoencoder?.num_layers ?? 2,
      fourier_features: config.autoencoder?.fourier_features ?? 8,
    },
  }
}

export function tasksOf(config: UpsConfig): string[] {
  return Array.isArray(config.data.task) ? config.data.task : [config.data.task]
}

/** Which raw file and split plan the config chooses (data.file, data.raw_split). */
export function dataSourceOf(config: UpsConfig): DataSource {
  return {file: config.data.file ?? null, split: config.data.raw_split ?? null}
}

/** What `ups data validate CONFIG` checks: the config's data root, tasks, split and data source. */
export function dataTarget(config: UpsConfig): {root?: string; tasks: string[]; split?: string; source: DataSource} {
  return {root: config.data.root, tasks: tasksOf(config), split: config.data.split, source: dataSourceOf(config)}
}

/** Everything that changes what training produces; logging, vast, monitor and evaluation do not. */
export function trainingConfigHash(config: UpsConfig): string {
  const {logging: _l, vast: _v, monitor: _m, evaluation: _e, include: _i, ttc: _t, checkpoint: _c, ...rest} = config
  // A resource knob: in-memory data trains the same under any budget (streamed order: blocks.ts).
  const {memory_budget_mb: _b, ...data} = rest.data ?? ({} as UpsConfig['data'])
  return sha256(canonicalJson({...rest, data})).slice(0, 16)
}

/** What the latent cache depends on: the data read and the encoder's shape (its weights are hashed separately). */
export function latentCacheConfigHash(config: UpsConfig): string {
  const arch = resolveArchitecture(config)
  const d = config.data
  const key = {
    task: d.task,
    patch_size: d.patch_size ?? 1,
    field_name: d.field_name ?? null,
    // Which samples of a raw file each split holds: same shapes, other trajectories.
    file: d.file ?? null,
    raw_split: d.raw_split ?? null,
    time_stride: config.training?.time_stride ?? 1,
    latent: arch.latent,
    autoencoder: arch.autoencoder,
    dtype: config.training?.latent_cache_dtype ?? 'float32',
  }
  return sha256(canonicalJson(key)).slice(0, 16)
}
