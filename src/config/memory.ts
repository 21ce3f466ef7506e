/**
 * Peak training memory of a config, from its shapes alone (no model is built), so `ups validate`
 * can refuse a config that fits no machine (latent.dim 1e8, a million tokens) before anything
 * allocates. Mirrors the models' own counts (models/operator.ts, autoencoder.ts, mlp.ts,
 * corrector.ts) closely enough to be within a small factor; biases and norms are ignored.
 *
 * Per enabled stage: trained parameters x 4 bytes x 5 (weights, gradients, Adam's two moments,
 * EMA) + frozen models' weights x 4 bytes + float32 activations kept for backward at the stage's
 * batch size. The peak is the largest stage.
 */
import {resolveArchitecture, resolveStage, tasksOf} from './resolve.js'
import {STAGES, type StageName, type UpsConfig} from './schema.js'
import {TASKS} from './tasks.js'

/** Bytes per trained parameter: the weight, its gradient, two Adam moments and an EMA copy (float32). */
export const TRAINED_BYTES_PER_PARAM = 4 * 5

export interface StageMemory {
  stage: StageName
  batchSize: number
  /** Parameters trained in this stage. */
  params: number
  /** Parameters of frozen models the stage runs (the operator under the corrector, ...). */
  frozenParams: number
  paramBytes: number
  activationBytes: number
  totalBytes: number
}

const mlpParams = (inDim: number, hidden: number, outDim: number, layers: number) => {
  const dims = [inDim, ...new Array<number>(Math.max(0, layers - 1)).fill(hidden), outDim]
  return dims.slice(1).reduce((s, d, i) => s + dims[i] * d, 0)
}

/** Floats per row an Mlp keeps for backward (as Mlp.activationFloatsPerRow). */
const mlpActivations = (inDim: number, hidden: number, outDim: number, layers: number) => {
  const dims = [inDim, ...new Array<number>(Math.max(0, layers - 1)).fill(hidden), outDim]
  return dims.slice(1).reduce((s, d, i) => s + dims[i] + (i < dims.length - 2 ? 4 * d : d), 0)
}

function operatorShape(config: UpsConfig) {
  const {latent, pdet} = resolveArchitecture(config)
  const c = Math.max(1, pdet.hidden_dim)
  // Invalid divisibility is reported by its own checks; keep the arithmetic finite here.
  const gs = pdet.group_size > 0 ? Math.min(pdet.group_size, c) : c
  const heads = Math.max(1, pdet.num_heads)
  const mlp = Math.round(c * pdet.mlp_ratio)
  const levels = pdet.depths.map((depth, l) => ({depth, tokens: Math.max(1, Math.ceil(latent.tokens / 2 ** l)), times: l === pdet.depths.length - 1 ? 1 : 2}))
  return {d: pdet.input_dim, c, gs, heads, groups: c / gs, mlp, levels, tokens: latent.tokens}
}

function operatorParams(config: UpsConfig): number {
  const o = operatorShape(config)
  const layer = 4 * o.gs * o.gs + 2 * o.c * o.mlp
  const layers = o.levels.reduce((s, l) => s + l.times * l.depth, 0)
  // Input and output projections, the layers, and per level below the top a down, an up and a skip projection.
  return 2 * o.d * o.c + layers * layer + 3 * Math.max(0, o.levels.length - 1) * o.c * o.c
}

/** As GridOperator.activationBytes. */
function operatorActivationBytes(config: UpsConfig, batch: number): number {
  const o = operatorShape(config)
  let floats = batch * o.tokens * o.d * 6
  for (const l of o.levels) {
    const layer = batch * l.tokens * (o.c * 8 + o.gs * o.groups * 6 + o.mlp * 5) + batch * o.groups * o.heads * l.tokens * l.tokens * 3
    floats += l.times * l.depth * layer + batch * l.tokens * o.c * 4
  }
  return floats * 4
}

/** Values of one token's patch: the grid (data.resolution or the generator's nx, per axis) over the tokens, times channels. */
function patchValues(config: UpsConfig): number {
  const info = TASKS[tasksOf(config)[0]]
  const dims = info?.dims ?? 1
  const grid = config.data.resolution ?? config.data.generate?.nx ?? info?.grid[0] ?? 1024
  const tokens = Math.max(1, config.latent.tokens)
  const perAxis = dims === 1 ? tokens : Math.max(1, Math.round(Math.sqrt(tokens)))
  return Math.max(1, Math.ceil(grid / perAxis)) ** dims * (info?.channels ?? 1)
}

function autoencoder(config: UpsConfig, batch: number): {params: number; activationBytes: number} {
  const {latent, autoencoder: ae} = resolveArchitecture(config)
  const p = patchValues(config)
  const nd = TASKS[tasksOf(config)[0]]?.dims ?? 1
  const f = 2 * ae.fourier_features * nd
  const params = mlpParams(p + f, ae.hidden_dim, latent.dim, ae.num_layers) + mlpParams(latent.dim + f, ae.hidden_dim, p, ae.num_layers) + 2 * p * latent.dim
  const rows = batch * latent.tokens
  const perRow = mlpActivations(p + f, ae.hidden_dim, latent.dim, ae.num_layers) + mlpActivations(latent.dim + f, ae.hidden_dim, p, ae.num_layers) + 3 * p + latent.dim
  return {params, activationBytes: 4 * rows * perRow}
}

/** The token MLP of the corrector, the consistency student and the steady prior (input: state, condition, tau embedding). */
function tokenMlp(config: UpsConfig, batch: number): {params: number; activationBytes: number} {
  const {latent, diffusion} = resolveArchitecture(config)
  const inDim = 2 * diffusion.latent_dim + diffusion.time_embed_dim
  const layers = Math.max(2, diffusion.num_layers)
  return {
    params: mlpParams(inDim, diffusion.hidden_dim, diffusion.latent_dim, layers),
    activationBytes: 4 * batch * latent.tokens * mlpActivations(inDim, diffusion.hidden_dim, diffusion.latent_dim, layers),
  }
}

export function stageMemory(config: UpsConfig, stage: StageName): StageMemory {
  const batch = resolveStage(config, stage).batch_size
  let params: number
  let frozenParams = 0
  let activationBytes: number
  if (stage === 'autoencoder') {
    ;({params, activationBytes} = autoencoder(config, batch))
  } else if (stage === 'operator') {
    params = operatorParams(config)
    activationBytes = operatorActivationBytes(config, batch)
  } else {
    const net = tokenMlp(config, batch)
    params = net.params
    activationBytes = net.activationBytes
    // The frozen operator runs forward on every batch (and the teacher, for distillation).
    frozenParams = operatorParams(config) + (stage === 'consistency_distill' ? net.params : 0)
    activationBytes += operatorActivationBytes(config, batch) / 3
  }
  const paramBytes = params * TRAINED_BYTES_PER_PARAM + frozenParams * 4
  return {stage, batchSize: batch, params, frozenParams, paramBytes, activationBytes, totalBytes: paramBytes + activationBytes}
}

/** Every enabled stage's estimate, largest first. */
export function trainingMemory(config: UpsConfig): StageMemory[] {
  return STAGES.filter((s) => resolveStage(config, s).enabled)
    .map((s) => stageMemory(config, s))
    .sort((a, b) => b.totalBytes - a.totalBytes)
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes)
  if (bytes >= 1e14) return `${Math.round(bytes / 1e12).toLocaleString('en-US')} TB`
  if (bytes >= 1e12) return `${(bytes / 1e12).toFixed(1)} TB`
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`
  return `${(bytes / 1e6).toFixed(1)} MB`
}

export function describeStageMemory(m: StageMemory): string {
  const params = m.params >= 1e9 ? `${(m.params / 1e9).toPrecision(3)} billion` : m.params >= 1e6 ? `${(m.params / 1e6).toPrecision(3)} million` : String(m.params)
  return `${m.stage} needs about ${formatBytes(m.totalBytes)} (${params} parameters: ${formatBytes(m.paramBytes)} of weights, gradients and optimizer state; ${formatBytes(m.activationBytes)} of activations at batch ${m.batchSize})`
}
