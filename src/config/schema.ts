/**
 * The one definition of a ups training/eval config. Key names are the upstream Python project's,
 * so existing YAML files load unchanged. No transforms here: derived values live in resolve.ts.
 * Every field carries a description; `ups config schema` prints this as JSON Schema for editors.
 */
import {z} from 'zod'

// One parse per process: compiling zod's fast paths costs more than it saves.
z.config({jitless: true})

const d = <T extends z.ZodType>(schema: T, description: string): T => schema.meta({description}) as T

const posInt = z.number().int().positive()
const nonNegInt = z.number().int().nonnegative()
const nonNeg = z.number().nonnegative()
const positive = z.number().positive()

/** Keys the upstream PyTorch scripts used that have no meaning here: accepted, ignored. */
const compat = (what: string) => d(z.unknown(), `Accepted for compatibility with upstream configs; ${what}`)

export const SPLITS = ['train', 'val', 'valid', 'test'] as const
export const OPTIMIZERS = ['adam', 'adamw', 'sgd'] as const
export const SCHEDULERS = ['none', 'constant', 'steplr', 'cosineannealinglr', 'reducelronplateau'] as const
export const STAGES = ['autoencoder', 'operator', 'diff_residual', 'consistency_distill', 'steady_prior'] as const
export type StageName = (typeof STAGES)[number]

export const optimizerSchema = z.object({
  name: d(z.enum(OPTIMIZERS), 'Optimizer: adam, adamw (decoupled weight decay) or sgd (with momentum).').optional(),
  lr: d(positive, 'Learning rate.').optional(),
  weight_decay: d(nonNeg, 'Weight decay (decoupled for adamw, L2 for adam and sgd).').optional(),
  betas: d(z.tuple([z.number(), z.number()]), 'Adam betas [beta1, beta2].').optional(),
  eps: d(positive, 'Adam epsilon.').optional(),
  momentum: d(nonNeg, 'SGD momentum.').optional(),
})

export const schedulerSchema = z.object({
  name: d(z.enum(SCHEDULERS), 'Learning-rate schedule.').optional(),
  t_max: d(z.number(), 'cosineannealinglr: epochs of one half cosine period.').optional(),
  eta_min: d(nonNeg, 'cosineannealinglr: the lowest learning rate.').optional(),
  step_size: d(z.number(), 'steplr: epochs between decays.').optional(),
  gamma: d(z.number(), 'steplr: decay factor.').optional(),
  factor: d(z.number(), 'reducelronplateau: decay factor.').optional(),
  patience: d(nonNegInt, 'reducelronplateau: epochs without improvement before decaying.').optional(),
  min_lr: d(nonNeg, 'reducelronplateau: the lowest learning rate.').optional(),
  mode: d(z.enum(['min', 'max']), 'reducelronplateau: whether the monitored value should fall or rise.').optional(),
  warmup_epochs: d(nonNegInt, 'Linear warm-up epochs before the schedule starts.').optional(),
})

export const stageSchema = z.object({
  epochs: d(z.number().int(), 'Epochs for this stage; 0 or less skips it.').optional(),
  optimizer: d(optimizerSchema, 'Overrides the top-level optimizer for this stage.').optional(),
  scheduler: d(schedulerSchema, 'Overrides the top-level scheduler for this stage.').optional(),
  patience: d(nonNegInt, 'Early stopping: epochs without validation improvement.').optional(),
  grad_clip: d(positive.nullable(), 'Clip gradients to this global norm (null: no clipping).').optional(),
  ema_decay: d(z.number().nullable(), 'EMA decay of weights (null: no EMA).').optional(),
  batch_size: d(posInt, 'Batch size for this stage.').optional(),
  accum_steps: d(posInt, 'Gradient accumulation steps for this stage.').optional(),
})

const taskName = d(z.string().min(1), 'PDEBench task, e.g. burgers1d.')

export const dataSchema = z.object({
  task: d(z.union([taskName, z.array(taskName).min(1)]), 'Task name, or a list of tasks for multi-task training.'),
  split: d(z.enum(SPLITS), 'Split to read: train, val (or valid) or test.').optional(),
  root: d(z.string(), 'Folder of the HDF5 files. defaults.yaml sets ${env:PDEBENCH_ROOT:-data/pdebench}: $PDEBENCH_ROOT unless a config sets its own root.').optional(),
  file: d(
    z.union([z.string().min(1), z.record(z.string(), z.string().min(1))]).nullable(),
    'A raw PDEBench file to split into train/val/test (a name in data.root, or a path), or a map task -> file. Needed when the root holds several release files for a task (Burgers at several viscosities); when unset, the one release file of the task is used if there are no {task}_{split}.h5 shards.',
  ).optional(),
  raw_split: d(
    z.object({
      val: d(z.number().min(0).max(0.99), 'Fraction of the samples for validation.').optional(),
      test: d(z.number().min(0).max(0.99), 'Fraction of the samples for test (PDEBench uses the last 10%).').optional(),
      seed: d(z.number().int().nullable(), 'null: contiguous ranges (train first, then val, test last, as PDEBench); an integer: a seeded permutation of the sample indices.').optional(),
    }),
    'How a raw PDEBench file is split by sample index; recorded in the run metadata.',
  ).optional(),
  patch_size: d(posInt, "Points per patch of the grid encoder, per axis. Each latent token spans grid / tokens points per axis and is read as the concatenation of its patches, so patch_size must divide that span; every such size encodes the same.").optional(),
  field_name: d(z.string(), 'Dataset name inside the files (default: tensor, or data for converted shards).').optional(),
  shard_limit: d(posInt.nullable(), 'Read at most this many shards per split.').optional(),
  resolution: d(posInt, 'Spatial grid points of the data (defaults to the task’s PDEBench grid).').optional(),
  max_samples: d(posInt.nullable(), 'Use at most this many trajectories per split.').optional(),
  memory_budget_mb: d(
    positive,
    'Memory for training data, in MB (default 2048). Frames (and, separately, the latent cache) that fit are read into RAM once; larger data is streamed from disk in blocks of trajectories, about a quarter of the budget each, two held per reading thread. The block size sets the streamed epoch order, so keep it the same across resumes.',
  ).optional(),
  generate: d(
    z.object({
      samples: d(posInt, 'Trajectories in total, split by `splits`.').optional(),
      nx: d(posInt, 'Spatial grid points.').optional(),
      nt: d(posInt, 'Stored time frames.').optional(),
      nu: d(positive, 'Burgers viscosity.').optional(),
      beta: d(z.number(), 'Advection speed.').optional(),
      seed: d(z.number().int(), 'Generator seed.').optional(),
      splits: d(z.record(z.string(), nonNeg), 'Fractions per split, e.g. {train: 0.8, val: 0.1, test: 0.1}.').optional(),
    }),
    'When the data files are missing, generate them with the built-in solver (local runs, CI).',
  ).optional(),
  download: compat('use `ups data fetch` instead.').optional(),
})

export const latentSchema = z.object({
  dim: d(z.number().int(), 'Channels per latent token.'),
  tokens: d(z.number().int(), 'Latent tokens per sample.'),
})

export const pdetSchema = z.object({
  input_dim: d(z.number().int(), 'Operator input channels; must equal latent.dim.').optional(),
  hidden_dim: d(z.number().int(), 'Operator width.'),
  depths: d(z.array(z.number().int().nonnegative()), 'Transformer layers per U-level, top to bottom.'),
  group_size: d(z.number().int(), 'Channels per attention group; must divide hidden_dim.'),
  num_heads: d(z.number().int(), 'Attention heads; must divide group_size.'),
  mlp_ratio: d(positive, 'MLP hidden width as a multiple of hidden_dim.').optional(),
  dropout: d(z.number().min(0).max(1), 'Dropout probability.').optional(),
})

export const autoencoderSchema = z.object({
  hidden_dim: d(posInt, 'Width of the encoder/decoder MLPs.').optional(),
  num_layers: d(posInt, 'Layers of each MLP.').optional(),
  fourier_features: d(nonNegInt, 'Fourier features of the coordinates fed to the encoder.').optional(),
})

export const diffusionSchema = z.object({
  latent_dim: d(z.number().int(), 'Must equal latent.dim.').optional(),
  hidden_dim: d(posInt, 'Corrector width.').optional(),
  num_layers: d(posInt, 'Corrector depth.').optional(),
  time_embed_dim: d(posInt, 'Width of the tau embedding.').optional(),
  dropout: d(z.number().min(0).max(1), 'Dropout probability.').optional(),
})

export const trainingSchema = z.object({
  batch_size: d(posInt, 'Default batch size.').optional(),
  dt: d(z.number(), 'Time step between frames fed to the operator (in data time units).').optional(),
  patience: d(nonNegInt, 'Early stopping patience (epochs) when a stage sets none.').optional(),
  grad_clip: d(positive.nullable(), 'Global-norm gradient clipping (null: off).').optional(),
  ema_decay: d(z.number().nullable(), 'EMA decay (null: off).').optional(),
  accum_steps: d(posInt, 'Gradient accumulation steps.').optional(),
  time_stride: d(z.number().int(), 'Use every n-th stored frame.').optional(),
  latent_cache_dir: d(z.string(), 'Where encoded trajectories are cached.').optional(),
  latent_cache_dtype: d(z.enum(['float16', 'float32']), 'Storage type of the latent cache.').optional(),
  checkpoint_interval: d(nonNegInt, 'Keep a numbered checkpoint every n epochs (0: off).').optional(),
  lambda_spectral: d(nonNeg, 'Weight of the spectral-energy loss.').optional(),
  lambda_relative: d(nonNeg, 'Weight of the relative (nRMSE) loss.').optional(),
  distill_num_taus: d(posInt, 'Teacher sampling steps distilled into one.').optional(),
  distill_micro_batch: d(posInt, "Rows of the teacher's sampling step computed at once during consistency distillation (memory only: the result is the same).").optional(),
  amp: d(z.boolean(), 'Mixed precision (upstream CUDA autocast). No tfjs backend trains in float16, so it has no effect here; training warns when it is set.').optional(),
  log_path: d(z.string(), 'Extra copy of the training log (JSON lines).').optional(),
  val_fraction: d(z.number().min(0).max(0.5), 'Fraction of training trajectories held out for early stopping when there is no val split.').optional(),
  tau_distribution: d(
    z.object({type: z.enum(['uniform', 'beta']).optional(), alpha: positive.optional(), beta: positive.optional()}),
    'Distribution of diffusion tau during training.',
  ).optional(),
  workers: d(
    z.union([z.literal('auto'), posInt]),
    'Data-parallel replicas of a training step (main thread + worker threads, each with its own backend); each takes whole micro-batches, so at most accum_steps are used. auto: min(CPU cores, accum_steps) on wasm/cpu, 1 on GPU backends; 1: no worker threads.',
  ).optional(),
  micro_batch: d(
    z.union([z.literal('auto'), posInt]),
    'Rows computed in one forward/backward pass. An optimizer step still averages batch_size x accum_steps items; this only sets how they are split into passes (the same result up to float rounding). auto: batch_size on CPU backends (wasm, cpu, tensorflow: unchanged); on GPU backends (webgpu, tensorflow-gpu) the whole step, batch_size x accum_steps, in one pass: a GPU step costs about the same whatever its rows, so fewer, larger passes train faster. N: whole micro-batches of batch_size per pass, floor(N / batch_size), between 1 and accum_steps. To give a GPU more work per step, raise batch_size or accum_steps.',
  ).optional(),
  num_workers: compat('data loading is streamed.').optional(),
  pin_memory: compat('no effect here.').optional(),
  prefetch_factor: compat('no effect here.').optional(),
  compile: compat('torch.compile has no equivalent.').optional(),
  use_parallel_encoding: compat('no effect here.').optional(),
})

export const evaluationSchema = z.object({
  enabled: d(z.boolean(), 'Evaluate after training.').optional(),
  split: d(z.enum(SPLITS), 'Split to evaluate on.').optional(),
  metrics: d(z.array(z.string()), 'Metrics to report (default: all).').optional(),
  rollout_steps: d(nonNegInt, 'Autoregressive rollout length.').optional(),
  max_samples: d(posInt.nullable(), 'Evaluate at most this many trajectories.').optional(),
  tau: d(z.number().min(0).max(1), 'Corrector tau.').optional(),
  use_corrector: d(z.boolean(), 'Apply the diffusion corrector.').optional(),
  corrector_noise: d(
    z.enum(['mean', 'sample']),
    "Where the corrector's sampling starts: mean (zero noise: a deterministic estimate of the residual's mean, the best point prediction) or sample (a seeded draw from its distribution).",
  ).optional(),
})

export const wandbSchema = z.object({
  enabled: d(z.boolean(), 'Mirror the run to Weights & Biases.').optional(),
  project: d(z.string(), 'W&B project.').optional(),
  entity: d(z.string(), 'W&B entity (team or user).').optional(),
  run_name: d(z.string(), 'Run name; ${...} interpolation allowed.').optional(),
  group: d(z.string(), 'Run group.').optional(),
  job_type: d(z.string(), 'Job type.').optional(),
  tags: d(z.array(z.string()), 'Tags.').optional(),
  notes: d(z.string(), 'Notes.').optional(),
})

export const ttcSchema = z
  .object({
    enabled: d(z.boolean(), 'Test-time conditioning.').optional(),
    steps: nonNegInt.optional(),
    candidates: posInt.optional(),
    beam_width: posInt.optional(),
    horizon: posInt.optional(),
    residual_threshold: z.number().optional(),
    gamma: z.number().optional(),
    max_evaluations: posInt.optional(),
    sampler: z.record(z.string(), z.unknown()).optional(),
    reward: z.record(z.string(), z.unknown()).optional(),
    decoder: z
      .object({
        latent_dim: z.number().int().optional(),
        query_dim: posInt.optional(),
        hidden_dim: z.number().int().optional(),
        mlp_hidden_dim: posInt.optional(),
        num_layers: posInt.optional(),
        num_heads: z.number().int().optional(),
        frequencies: z.array(z.number()).optional(),
        output_channels: z.record(z.string(), posInt).optional(),
      })
      .optional(),
  })
  .meta({description: 'Test-time conditioning (upstream keys).'})

export const vastSchema = z.object({
  gpu: d(z.string(), 'GPU model to rent, e.g. A100, RTX_4090.').optional(),
  num_gpus: d(posInt, 'GPUs per instance.').optional(),
  max_price: d(z.number(), 'Highest $/hour to pay for an offer.').optional(),
  image: d(z.string(), 'Docker image for the instance.').optional(),
  disk_gb: d(positive, 'Disk to allocate (GB).').optional(),
  budget_usd: d(z.number(), 'Refuse to launch when the estimate exceeds this.').optional(),
  min_reliability: d(z.number().min(0).max(1), 'Lowest host reliability to accept.').optional(),
})

const pct = z.number().min(0).max(100)

/** MON-001 thresholds for `ups monitor` / `ups watchdog`; defaults are the runbook's table. */
export const monitorSchema = z.object({
  gpu_util_warning_below: d(pct, 'GPU utilisation (%) under this is a warning (default 70).').optional(),
  gpu_util_critical_below: d(pct, 'GPU utilisation (%) under this is critical (default 50).').optional(),
  gpu_mem_warning_above: d(pct, 'GPU memory use (%) over this is a warning (default 90).').optional(),
  gpu_mem_critical_above: d(pct, 'GPU memory use (%) over this is critical (default 95).').optional(),
  loss_flat_minutes: d(positive, 'Operator loss unchanged this long is a warning (default 30).').optional(),
  loss_flat_tolerance: d(positive, 'Relative change under which the loss counts as flat (default 0.01).').optional(),
  diffusion_loss_warning_above: d(positive, 'Diffusion loss at or over this is a warning (default 0.01).').optional(),
  diffusion_loss_critical_above: d(positive, 'Diffusion loss over this is critical (default 0.05).').optional(),
  grad_norm_op_healthy: d(z.tuple([positive, positive]), 'Operator grad norm healthy range (default [0.01, 0.2]).').optional(),
  grad_norm_op_critical: d(z.tuple([positive, positive]), 'Operator grad norm outside this is critical (default [0.001, 1.0]).').optional(),
  grad_norm_diff_healthy: d(z.tuple([positive, positive]), 'Diffusion grad norm healthy range (default [0.05, 0.5]).').optional(),
  grad_norm_diff_critical_above: d(positive, 'Diffusion grad norm over this is critical (default 2.0).').optional(),
  cost_warning_above_pct: d(positive, 'Cost so far over this % of the estimate is a warning (default 120).').optional(),
  cost_critical_above_pct: d(positive, 'Cost so far over this % of the estimate is critical (default 150).').optional(),
})

export const configSchema = z.object({
  include: d(z.union([z.string(), z.array(z.string())]), 'Config(s) this one extends (relative path).').optional(),
  seed: d(z.number().int(), 'Random seed for init, shuffling and sampling.').optional(),
  data: d(dataSchema, 'Where the PDEBench data is and how to read it.'),
  latent: d(latentSchema, 'Latent space size.'),
  autoencoder: d(autoencoderSchema, 'Grid autoencoder.').optional(),
  operator: d(z.object({pdet: d(pdetSchema, 'The U-shaped PDE-transformer.')}), 'Latent operator.'),
  diffusion: d(diffusionSchema, 'Diffusion residual corrector.').optional(),
  training: d(trainingSchema, 'Training loop settings shared by all stages.').optional(),
  optimizer: d(optimizerSchema, 'Default optimizer for every stage.').optional(),
  scheduler: d(schedulerSchema, 'Default scheduler for every stage.').optional(),
  stages: d(z.object(Object.fromEntries(STAGES.map((s) => [s, stageSchema.optional()])) as Record<StageName, z.ZodOptional<typeof stageSchema>>), 'Per-stage settings.').optional(),
  checkpoint: d(z.object({dir: d(z.string(), 'Checkpoint folder (inside the run directory when relative).').optional()}), 'Checkpoints.').optional(),
  evaluation: d(evaluationSchema, 'Evaluation.').optional(),
  logging: d(z.object({wandb: wandbSchema.optional()}), 'Tracking.').optional(),
  ttc: ttcSchema.optional(),
  vast: d(vastSchema, 'Renting GPUs on Vast.ai.').optional(),
  monitor: d(monitorSchema, 'Health thresholds for ups monitor and ups watchdog (the runbook’s MON-001 table).').optional(),
})

export type UpsConfig = z.infer<typeof configSchema>
export type MonitorSettings = z.infer<typeof monitorSchema>
export type StageSettings = z.infer<typeof stageSchema>
export type OptimizerSettings = z.infer<typeof optimizerSchema>
export type SchedulerSettings = z.infer<typeof schedulerSchema>

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, {unrepresentable: 'any'})
}
