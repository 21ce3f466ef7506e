/**
 * The named checks `ups validate` runs on a config that matched the schema. Each has a stable id
 * (documented in the README and listed in --json) and returns pass, warn, fail or skip with a
 * message that says what was found and, when it is not a pass, what to change.
 */
import {join, resolve} from 'node:path'

import {findGpu, GPU_NAMES} from '../pipeline/gpus.js'
import {describeStageMemory, formatBytes, trainingMemory} from './memory.js'
import {latentCacheConfigHash, resolveArchitecture, resolveStage, tasksOf} from './resolve.js'
import {OPTIMIZERS, SCHEDULERS, STAGES, type UpsConfig} from './schema.js'
import {TASK_NAMES, TASKS} from './tasks.js'

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip'

export interface CheckOutcome {
  status: CheckStatus
  message: string
}

export interface CheckContext {
  config: UpsConfig
  env: NodeJS.ProcessEnv
  cwd: string
  /** CI mode: the data is not on this machine, so its absence is only a warning. */
  noData: boolean
  /** This machine's memory in bytes: the cap for a local run (no vast.gpu). */
  memoryBytes?: number
  fs: {
    exists(path: string): Promise<boolean>
    /** True when the folder exists and is writable, or can be created. */
    canWriteDir(path: string): Promise<boolean>
    readJson(path: string): Promise<unknown | undefined>
    /** Names in a folder ([] when it is missing). */
    listDir?(path: string): Promise<string[]>
  }
}

export interface CheckDefinition {
  id: string
  group: string
  title: string
  run(ctx: CheckContext): CheckOutcome | Promise<CheckOutcome>
}

const pass = (message: string): CheckOutcome => ({status: 'pass', message})
const warn = (message: string): CheckOutcome => ({status: 'warn', message})
const fail = (message: string): CheckOutcome => ({status: 'fail', message})
const skip = (message: string): CheckOutcome => ({status: 'skip', message})

const enabledStages = (c: UpsConfig) => STAGES.map((s) => resolveStage(c, s)).filter((s) => s.enabled)

const inRange = (value: number, lo: number, hi: number) => value >= lo && value <= hi

export const CHECKS: CheckDefinition[] = [
  // --- architecture -------------------------------------------------------------------------
  {id: 'arch.latent_dim_positive', group: 'Architecture', title: 'latent.dim and latent.tokens are positive', run: ({config: c}) =>
    c.latent.dim > 0 && c.latent.tokens > 0 ? pass(`latent ${c.latent.tokens} tokens x ${c.latent.dim} dims`) : fail(`latent.dim (${c.latent.dim}) and latent.tokens (${c.latent.tokens}) must be > 0.`)},
  {id: 'arch.input_dim_matches_latent', group: 'Architecture', title: 'operator.pdet.input_dim == latent.dim', run: ({config: c}) => {
    const input = c.operator.pdet.input_dim
    if (input === undefined) return pass(`input_dim not set; it follows latent.dim (${c.latent.dim})`)
    return input === c.latent.dim ? pass(`input_dim ${input}`) : fail(`operator.pdet.input_dim (${input}) != latent.dim (${c.latent.dim}); set input_dim to ${c.latent.dim} or remove it.`)
  }},
  {id: 'arch.group_size_divides_hidden', group: 'Architecture', title: 'group_size divides hidden_dim', run: ({config: c}) => {
    const {hidden_dim: h, group_size: g} = c.operator.pdet
    if (g <= 0 || h <= 0) return fail(`hidden_dim (${h}) and group_size (${g}) must be > 0.`)
    return h % g === 0 ? pass(`${h} / ${g} = ${h / g} groups`) : fail(`operator.pdet.hidden_dim (${h}) is not divisible by group_size (${g}); try group_size ${divisorsNear(h, g)}.`)
  }},
  {id: 'arch.heads_divide_group_size', group: 'Architecture', title: 'num_heads divides group_size', run: ({config: c}) => {
    const {group_size: g, num_heads: n} = c.operator.pdet
    if (n <= 0) return fail(`num_heads (${n}) must be > 0.`)
    return g % n === 0 ? pass(`${g} / ${n} = ${g / n} channels per head`) : fail(`operator.pdet.group_size (${g}) is not divisible by num_heads (${n}); try num_heads ${divisorsNear(g, n)}.`)
  }},
  {id: 'arch.depths_nonempty', group: 'Architecture', title: 'depths is a non-empty list', run: ({config: c}) => {
    const depths = c.operator.pdet.depths
    if (depths.length === 0) return fail('operator.pdet.depths is empty; use e.g. [1, 1, 1].')
    return depths.some((x) => x > 0) ? pass(`${depths.length} levels, ${depths.reduce((a, b) => a + b, 0)} layers`) : fail('operator.pdet.depths has no layer at all.')
  }},
  {id: 'arch.tokens_divisible_by_levels', group: 'Architecture', title: 'latent.tokens divisible by 2^(levels-1)', run: ({config: c}) => {
    const factor = 2 ** Math.max(0, c.operator.pdet.depths.length - 1)
    return c.latent.tokens % factor === 0
      ? pass(`${c.latent.tokens} tokens halve cleanly ${Math.log2(factor)} times`)
      : fail(`latent.tokens (${c.latent.tokens}) must be divisible by ${factor} for a ${c.operator.pdet.depths.length}-level U-shaped operator; use ${Math.ceil(c.latent.tokens / factor) * factor}.`)
  }},
  {id: 'arch.diffusion_latent_matches', group: 'Architecture', title: 'diffusion.latent_dim == latent.dim', run: ({config: c}) => {
    const dim = c.diffusion?.latent_dim
    if (dim === undefined) return pass('not set; follows latent.dim')
    return dim === c.latent.dim ? pass(`latent_dim ${dim}`) : fail(`diffusion.latent_dim (${dim}) != latent.dim (${c.latent.dim}).`)
  }},
  {id: 'arch.ttc_decoder_consistent', group: 'Architecture', title: 'ttc.decoder matches the model', run: ({config: c}) => {
    if (!c.ttc?.enabled) return skip('ttc disabled')
    const dec = c.ttc.decoder ?? {}
    const problems: string[] = []
    if (dec.latent_dim !== undefined && dec.latent_dim !== c.latent.dim) problems.push(`ttc.decoder.latent_dim (${dec.latent_dim}) != latent.dim (${c.latent.dim})`)
    if (dec.hidden_dim !== undefined && dec.num_heads !== undefined && dec.num_heads > 0 && dec.hidden_dim % dec.num_heads !== 0) problems.push(`ttc.decoder.hidden_dim (${dec.hidden_dim}) not divisible by num_heads (${dec.num_heads})`)
    return problems.length ? fail(problems.join('; ') + '.') : pass('decoder dims consistent')
  }},
  {id: 'arch.memory_fits', group: 'Architecture', title: 'the model fits in memory for training', run: ({config: c, memoryBytes}) => {
    const stages = trainingMemory(c)
    if (stages.length === 0) return skip('no stage enabled')
    const peak = stages[0]
    const gpu = c.vast?.gpu ? findGpu(c.vast.gpu) : undefined
    const cap = gpu ? {bytes: gpu.memoryGb * 1e9, where: `the ${gpu.name}'s ${gpu.memoryGb} GB (vast.gpu)`} : memoryBytes ? {bytes: memoryBytes, where: `this machine's ${formatBytes(memoryBytes)}`} : undefined
    if (!cap) return pass(`peak ~${formatBytes(peak.totalBytes)} (${peak.stage})`)
    const fix = 'lower latent.dim, latent.tokens, operator.pdet.hidden_dim, the grid (data.resolution) or the batch size (use accum_steps for a larger effective batch).'
    if (!(peak.totalBytes <= cap.bytes)) return fail(`${describeStageMemory(peak)}, more than ${cap.where}; ${fix}`)
    if (peak.totalBytes > 0.8 * cap.bytes) return warn(`${describeStageMemory(peak)}, over 80% of ${cap.where}; ${fix}`)
    return pass(`peak ~${formatBytes(peak.totalBytes)} (${peak.stage}) of ${cap.where}`)
  }},
  // --- data ---------------------------------------------------------------------------------
  {id: 'data.task_known', group: 'Data', title: 'data.task is a known PDEBench task', run: ({config: c}) => {
    const unknown = tasksOf(c).filter((t) => !TASKS[t])
    return unknown.length === 0 ? pass(tasksOf(c).join(', ')) : fail(`unknown task ${unknown.join(', ')}; known: ${TASK_NAMES.join(', ')}.`)
  }},
  {id: 'data.split_valid', group: 'Data', title: 'data.split is train, val/valid or test', run: ({config: c}) => pass(c.data.split ?? 'train (default)')},
  {id: 'data.root_exists', group: 'Data', title: 'data.root exists', run: async ({config: c, cwd, fs, noData}) => {
    const root = c.data.root
    if (!root) return c.data.generate ? pass('not set; data will be generated into data/pdebench') : fail('data.root is not set and $PDEBENCH_ROOT is empty; set data.root to the folder of the HDF5 files.')
    if (await fs.exists(resolve(cwd, root))) return pass(root)
    if (c.data.generate) return pass(`${root} (missing; will be generated: data.generate is set)`)
    if (noData) return warn(`${root} does not exist on this machine (--no-data: not required here).`)
    return fail(`${root} does not exist; fetch the data (\`ups data fetch\`), set data.root, or add a data.generate section.`)
  }},
  {id: 'data.patch_size_divides_grid', group: 'Data', title: "latent.tokens tile the grid and patch_size divides a token's span", run: ({config: c}) => {
    // The autoencoder gives each token an equal span of grid points per axis (grid / tokens per
    // axis) and reads it as the concatenation of its patch_size-point patches.
    const patch = c.data.patch_size ?? 1
    const info = TASKS[tasksOf(c)[0]]
    const grid = c.data.resolution ?? c.data.generate?.nx ?? info?.grid[0]
    if (!grid) return skip('grid size unknown for this task')
    const dims = info?.grid.length ?? 1
    const tokens = resolveArchitecture(c).latent.tokens
    const perAxis = dims === 1 ? tokens : Math.round(Math.sqrt(tokens))
    if (perAxis ** dims !== tokens || grid % perAxis !== 0) {
      return fail(`latent.tokens (${tokens}) does not tile the grid (${grid} points${dims > 1 ? ' per axis: a 2-D grid needs a square token count' : ''}): the autoencoder gives every token an equal span; pick a token count whose ${dims > 1 ? 'side ' : ''}divides ${grid}.`)
    }
    const span = grid / perAxis
    return span % patch === 0
      ? pass(`${grid} points: ${perAxis} tokens per axis of ${span} points, patches of ${patch}`)
      : fail(`data.patch_size (${patch}) does not divide a token's span of ${span} points (${grid} points / ${perAxis} tokens per axis): a token is read as the concatenation of its patches, so they must fit it exactly.`)
  }},
  // --- hyperparameters ----------------------------------------------------------------------
  {id: 'hparams.learning_rates_in_range', group: 'Hyperparameters', title: 'learning rates in [1e-6, 1e-2]', run: ({config: c}) => {
    const odd = enabledStages(c).filter((s) => !inRange(s.optimizer.lr, 1e-6, 1e-2))
    return odd.length ? warn(odd.map((s) => `${s.stage} lr ${s.optimizer.lr}`).join(', ') + ' outside the usual [1e-6, 1e-2].') : pass(enabledStages(c).map((s) => `${s.stage} ${s.optimizer.lr}`).join(', ') || 'no stage enabled')
  }},
  {id: 'hparams.weight_decay_in_range', group: 'Hyperparameters', title: 'weight decay in [0, 0.3]', run: ({config: c}) => {
    const odd = enabledStages(c).filter((s) => !inRange(s.optimizer.weight_decay, 0, 0.3))
    return odd.length ? warn(odd.map((s) => `${s.stage} weight_decay ${s.optimizer.weight_decay}`).join(', ') + ' is unusually large.') : pass('ok')
  }},
  {id: 'hparams.grad_clip_sensible', group: 'Hyperparameters', title: 'gradient clipping set and in [0.1, 10]', run: ({config: c}) => {
    const stages = enabledStages(c)
    const none = stages.filter((s) => s.grad_clip === null)
    const odd = stages.filter((s) => s.grad_clip !== null && !inRange(s.grad_clip, 0.1, 10))
    if (odd.length) return warn(odd.map((s) => `${s.stage} grad_clip ${s.grad_clip}`).join(', ') + ' outside [0.1, 10].')
    return none.length ? warn(`no gradient clipping for ${none.map((s) => s.stage).join(', ')}; set training.grad_clip (e.g. 1.0) to guard against NaN.`) : pass('ok')
  }},
  {id: 'hparams.ema_decay_in_range', group: 'Hyperparameters', title: 'EMA decay in [0.9, 0.9999]', run: ({config: c}) => {
    const odd = enabledStages(c).filter((s) => s.ema_decay !== null && !inRange(s.ema_decay, 0.9, 0.9999))
    return odd.length ? warn(odd.map((s) => `${s.stage} ema_decay ${s.ema_decay}`).join(', ') + ' outside [0.9, 0.9999].') : pass('ok')
  }},
  {id: 'hparams.time_stride_valid', group: 'Hyperparameters', title: 'time_stride >= 1', run: ({config: c}) => {
    const stride = c.training?.time_stride ?? 1
    if (stride < 1) return fail(`training.time_stride (${stride}) must be >= 1.`)
    return stride > 10 ? warn(`training.time_stride ${stride} skips most frames.`) : pass(String(stride))
  }},
  {id: 'hparams.dt_positive', group: 'Hyperparameters', title: 'training.dt > 0', run: ({config: c}) => {
    const dt = c.training?.dt
    return dt === undefined ? pass('not set; taken from the data') : dt > 0 ? pass(String(dt)) : fail(`training.dt (${dt}) must be > 0.`)
  }},
  {id: 'hparams.batch_size_for_model', group: 'Hyperparameters', title: 'batch size fits the model', run: ({config: c}) => {
    const arch = resolveArchitecture(c)
    const layers = arch.pdet.depths.reduce((a, b) => a + b, 0) + 2
    const worst = Math.max(...STAGES.map((s) => resolveStage(c, s).batch_size))
    // About 24 float32 activations per token-channel per layer kept for the backward pass.
    const gb = (worst * arch.latent.tokens * arch.pdet.hidden_dim * layers * 24 * 4) / 1e9
    if (gb > 40) return warn(`batch ${worst} needs about ${gb.toFixed(1)} GB of activations; lower the batch size or use accum_steps.`)
    return worst < 2 ? warn(`batch size ${worst} gives very noisy gradients; use accum_steps to enlarge the effective batch.`) : pass(`largest batch ${worst}, ~${gb < 0.1 ? '<0.1' : gb.toFixed(1)} GB activations`)
  }},
  {id: 'hparams.effective_batch_size', group: 'Hyperparameters', title: 'effective batch (batch x accum) in [4, 1024]', run: ({config: c}) => {
    const odd = enabledStages(c).filter((s) => !inRange(s.batch_size * s.accum_steps, 4, 1024))
    return odd.length ? warn(odd.map((s) => `${s.stage} ${s.batch_size}x${s.accum_steps}`).join(', ') + ' outside [4, 1024].') : pass(enabledStages(c).map((s) => `${s.stage} ${s.batch_size * s.accum_steps}`).join(', ') || 'no stage enabled')
  }},
  // --- stages -------------------------------------------------------------------------------
  {id: 'stages.operator_epochs_positive', group: 'Stages', title: 'stages.operator.epochs > 0', run: ({config: c}) => {
    const epochs = c.stages?.operator?.epochs
    return epochs !== undefined && epochs > 0 ? pass(`${epochs} epochs`) : fail(`stages.operator.epochs is ${epochs ?? 'not set'}; the operator must train (e.g. epochs: 25).`)
  }},
  {id: 'stages.epochs_nonnegative', group: 'Stages', title: 'other stages: epochs >= 0', run: ({config: c}) => {
    const negative = STAGES.filter((s) => (c.stages?.[s]?.epochs ?? 0) < 0)
    if (negative.length) return warn(`${negative.join(', ')} have negative epochs (treated as skipped); use 0.`)
    return pass(STAGES.map((s) => `${s} ${resolveStage(c, s).epochs}`).join(', '))
  }},
  {id: 'stages.optimizer_resolvable', group: 'Stages', title: 'each enabled stage has a known optimizer', run: ({config: c}) => {
    const bad = enabledStages(c).filter((s) => !(OPTIMIZERS as readonly string[]).includes(s.optimizer.name) || !(s.optimizer.lr > 0))
    if (bad.length) return fail(`${bad.map((s) => s.stage).join(', ')}: optimizer needs a name (${OPTIMIZERS.join('/')}) and lr > 0.`)
    const sgdNoMomentum = enabledStages(c).filter((s) => s.optimizer.name === 'sgd' && s.optimizer.momentum === 0)
    return sgdNoMomentum.length ? warn(`sgd without momentum for ${sgdNoMomentum.map((s) => s.stage).join(', ')}.`) : pass(enabledStages(c).map((s) => `${s.stage} ${s.optimizer.name}`).join(', ') || 'no stage enabled')
  }},
  {id: 'stages.scheduler_consistent', group: 'Stages', title: 'schedulers known and consistent', run: ({config: c}) => {
    const problems: string[] = []
    for (const s of enabledStages(c)) {
      const sch = s.scheduler
      if (!(SCHEDULERS as readonly string[]).includes(sch.name)) problems.push(`${s.stage}: unknown scheduler ${sch.name}`)
      if (sch.name === 'cosineannealinglr') {
        if (sch.t_max !== undefined && sch.t_max < 1) problems.push(`${s.stage}: t_max (${sch.t_max}) must be >= 1`)
        if (sch.eta_min !== undefined && sch.eta_min >= s.optimizer.lr) problems.push(`${s.stage}: eta_min (${sch.eta_min}) must be below lr (${s.optimizer.lr})`)
      }
      if (sch.name === 'steplr') {
        if (sch.step_size === undefined || sch.step_size < 1) problems.push(`${s.stage}: steplr needs step_size >= 1`)
        if (sch.gamma !== undefined && !(sch.gamma > 0 && sch.gamma <= 1)) problems.push(`${s.stage}: gamma (${sch.gamma}) must be in (0, 1]`)
      }
      if (sch.name === 'reducelronplateau' && sch.factor !== undefined && !(sch.factor > 0 && sch.factor < 1)) problems.push(`${s.stage}: factor (${sch.factor}) must be in (0, 1)`)
    }
    return problems.length ? fail(problems.join('; ') + '.') : pass(enabledStages(c).map((s) => `${s.stage} ${s.scheduler.name}`).join(', ') || 'no stage enabled')
  }},
  // --- checkpoints and cache ----------------------------------------------------------------
  {id: 'checkpoint.dir_writable', group: 'Checkpoints', title: 'checkpoint.dir is writable', run: async ({config: c, cwd, fs}) => {
    const dir = c.checkpoint?.dir ?? 'checkpoints'
    return (await fs.canWriteDir(resolve(cwd, dir))) ? pass(dir) : fail(`cannot write to ${dir}; choose a writable checkpoint.dir.`)
  }},
  {id: 'cache.latent_cache_matches', group: 'Checkpoints', title: 'an existing latent cache matches the config', run: async ({config: c, cwd, fs}) => {
    const dir = c.training?.latent_cache_dir
    if (!dir) return skip('no training.latent_cache_dir')
    const expected = latentCacheConfigHash(c)
    const stale: string[] = []
    let found = 0
    // One folder per cache key: `<task>_<split>-<key>` (and `<task>_<split>` from older versions).
    const names = (await fs.listDir?.(resolve(cwd, dir))) ?? []
    for (const task of tasksOf(c)) {
      for (const split of ['train', 'val', 'test']) {
        const base = `${task}_${split}`
        const folders = [base, ...names.filter((n) => n.startsWith(`${base}-`))]
        const metas = (await Promise.all(folders.map((f) => fs.readJson(join(resolve(cwd, dir), f, 'meta.json'))))).filter(Boolean) as Array<{config_hash?: string}>
        if (metas.length === 0) continue
        found++
        if (!metas.some((m) => m.config_hash === expected)) stale.push(base)
      }
    }
    if (stale.length) return warn(`latent cache ${stale.join(', ')} was built for another config; it will be rebuilt.`)
    return pass(found ? `${found} cached split(s) match` : 'no cache yet; it will be built')
  }},
  // --- tracking -----------------------------------------------------------------------------
  {id: 'wandb.project_set', group: 'W&B', title: 'W&B project set when enabled', run: ({config: c}) => {
    const w = c.logging?.wandb
    if (!w?.enabled) return skip('W&B disabled')
    return w.project ? pass(w.project) : fail('logging.wandb.enabled is true but logging.wandb.project is not set.')
  }},
  {id: 'wandb.api_key_present', group: 'W&B', title: 'WANDB_API_KEY present when enabled', run: ({config: c, env}) => {
    if (!c.logging?.wandb?.enabled) return skip('W&B disabled')
    if (env.WANDB_MODE === 'offline' || env.WANDB_MODE === 'disabled') return pass(`WANDB_MODE=${env.WANDB_MODE}: no upload`)
    return env.WANDB_API_KEY ? pass('set') : warn('WANDB_API_KEY is not set: the run is recorded locally only; `ups sync RUN` uploads it later.')
  }},
  {id: 'wandb.entity_set', group: 'W&B', title: 'W&B entity set when enabled', run: ({config: c}) => {
    const w = c.logging?.wandb
    if (!w?.enabled) return skip('W&B disabled')
    return w.entity ? pass(w.entity) : warn('logging.wandb.entity is not set; your default entity will be used.')
  }},
  // --- vast ---------------------------------------------------------------------------------
  {id: 'vast.gpu_known', group: 'Vast.ai', title: 'vast.gpu is in the pricing table', run: ({config: c}) => {
    if (!c.vast) return skip('no vast section')
    if (!c.vast.gpu) return warn('vast.gpu not set; launch will need --gpu.')
    return findGpu(c.vast.gpu) ? pass(findGpu(c.vast.gpu)!.name) : fail(`vast.gpu "${c.vast.gpu}" is not in the pricing table (${GPU_NAMES.join(', ')}).`)
  }},
  {id: 'vast.max_price_positive', group: 'Vast.ai', title: 'vast.max_price and budget_usd > 0', run: ({config: c}) => {
    if (!c.vast) return skip('no vast section')
    const problems: string[] = []
    if (c.vast.max_price !== undefined && !(c.vast.max_price > 0)) problems.push(`vast.max_price (${c.vast.max_price}) must be > 0`)
    if (c.vast.budget_usd !== undefined && !(c.vast.budget_usd > 0)) problems.push(`vast.budget_usd (${c.vast.budget_usd}) must be > 0`)
    return problems.length ? fail(problems.join('; ') + '.') : pass(`max $${c.vast.max_price ?? '-'}/h, budget $${c.vast.budget_usd ?? '-'}`)
  }},
]

/** Nearby values that divide `n`, to suggest in a failure message. */
function divisorsNear(n: number, near: number): string {
  const divisors = Array.from({length: n}, (_, i) => i + 1).filter((d) => n % d === 0)
  return divisors.sort((a, b) => Math.abs(a - near) - Math.abs(b - near)).slice(0, 2).sort((a, b) => a - b).join(' or ')
}
