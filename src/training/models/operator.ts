/**
 * The latent operator: a U-shaped PDE-transformer over latent tokens.
 *   z_next = z + LayerNorm(core(z + timeEmbedding(dt)))
 * core: input projection -> per level `depth` transformer layers (pre-norm channel-separated
 * attention with RMS-normalised q/k; pre-norm GELU MLP) -> pairwise-mean token downsampling +
 * linear projection -> bottleneck -> linear upsampling + projected skip -> ... -> final
 * LayerNorm -> output projection.
 * Channel-separated attention: the hidden channels are split into groups of `groupSize`; each
 * group attends over the tokens on its own (shared q/k/v weights across groups), with `numHeads`
 * heads of groupSize/numHeads channels. Everything is 2-D matMuls with batch folded into rows.
 * The attention block runs as tfjs ops (batched matMuls over [B*G*H, T, hd]), as one JS kernel
 * (fused.ts, when fused kernels are forced on), or on webgpu as hand-written WGSL programs
 * (webgpu-programs/attention.ts: one dispatch forward, four backward).
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../../util/errors.js'
import {
  bmm,
  constMatmul,
  createLayerNorm,
  createLinear,
  createRmsNorm,
  type Ctx,
  dropout,
  gelu,
  type Linear,
  permute,
  view,
  type Norm,
  type ScaledNorm,
  scalarEmbedding,
  silu,
} from '../layers.js'
import {fusedGroupAttention, type GroupAttentionShape, useFusedAttention, useReferenceLayers} from '../fused.js'
import {webgpuAttentionFits, webgpuGroupAttention} from '../webgpu-programs/attention.js'
import {useWebgpuPrograms} from '../webgpu-programs/program.js'
import type {ParamStore} from '../params.js'
import type {ModelInfo} from './types.js'

export interface OperatorOptions {
  /** latent.dim */
  inputDim: number
  hiddenDim: number
  depths: number[]
  groupSize: number
  numHeads: number
  mlpRatio: number
  dropout: number
  /** latent.tokens */
  tokens: number
  /** Width of the dt embedding's sinusoidal features (default 32). */
  timeEmbedDim?: number
}

export function checkOperatorOptions(o: OperatorOptions): void {
  const problems: string[] = []
  if (o.hiddenDim % o.groupSize !== 0) problems.push(`hidden_dim ${o.hiddenDim} is not divisible by group_size ${o.groupSize}`)
  if (o.groupSize % o.numHeads !== 0) problems.push(`group_size ${o.groupSize} is not divisible by num_heads ${o.numHeads}`)
  if (o.depths.length === 0 || o.depths.some((d) => !Number.isInteger(d) || d < 0)) problems.push('depths must be a non-empty list of non-negative integers')
  if (o.tokens < 1) problems.push('tokens must be positive')
  if (problems.length > 0) {
    throw new UserError(`Invalid operator.pdet settings: ${problems.join('; ')}.`, {
      code: 'TRAIN_MODEL_CONFIG',
      hint: 'Fix operator.pdet in the config (hidden_dim % group_size == 0, group_size % num_heads == 0).',
      exitCode: ExitCode.CHECK_FAILED,
    })
  }
}

/** eps of the q and k RMSNorms (createRmsNorm's default). */
const RMS_EPS = 1e-6

/**
 * The attention block as tfjs ops (the reference the JS kernel and the WebGPU programs are tested
 * against): q/k RMS norms, batched matMuls over [B*G*H, T, hd], softmax. qkv [B*T*G, 3*gs] ->
 * [B*T*G, gs].
 */
export function groupAttentionOps(qkv: tf.Tensor2D, qNorm: ScaledNorm, kNorm: Norm, s: GroupAttentionShape): tf.Tensor2D {
  const {batch, tokens, groups, heads, headDim: hd} = s
  const [q0, k0, v0] = tf.split(qkv, 3, 1) as tf.Tensor2D[]
  // The score scale 1/sqrt(hd) rides on q's norm (reference layers: a multiply of the scores).
  const reference = useReferenceLayers()
  const q = qNorm.applyScaled(q0, reference ? 1 : 1 / Math.sqrt(hd))
  const k = kNorm.apply(k0)
  // [B, T, G, H, hd] -> [B*G*H, T, hd]; keys pre-transposed to [B*G*H, hd, T].
  const n = batch * groups * heads
  const heads5 = [batch, tokens, groups, heads, hd]
  const qh = permute<tf.Tensor3D>(q, heads5, [0, 2, 3, 1, 4], [n, tokens, hd])
  const kh = permute<tf.Tensor3D>(k, heads5, [0, 2, 3, 4, 1], [n, hd, tokens])
  const vh = permute<tf.Tensor3D>(v0, heads5, [0, 2, 3, 1, 4], [n, tokens, hd])
  const scores = reference ? (tf.mul(bmm(qh, kh), 1 / Math.sqrt(hd)) as tf.Tensor3D) : bmm(qh, kh)
  const attn = bmm(tf.softmax(scores), vh)
  return permute<tf.Tensor2D>(attn, [batch, groups, heads, tokens, hd], [0, 3, 1, 2, 4], [batch * tokens * groups, heads * hd])
}

/** eps of the output LayerNorm (see the constructor). */
export const OUT_NORM_EPS = 1

interface Layer {
  attnNorm: Norm
  qkv: Linear
  qNorm: ScaledNorm
  kNorm: Norm
  out: Linear
  mlpNorm: Norm
  fc1: Linear
  fc2: Linear
  /** RMSNorm gains of q and k (for the fused attention kernel). */
  gq: tf.Variable
  gk: tf.Variable
}

/** Linear interpolation (align_corners=false) from `from` to `to` points, as a [from, to] matrix. */
function interpolationMatrix(from: number, to: number): Float32Array {
  const m = new Float32Array(from * to)
  const scale = from / to
  for (let j = 0; j < to; j++) {
    const src = Math.max(0, (j + 0.5) * scale - 0.5)
    const i0 = Math.min(Math.floor(src), from - 1)
    const i1 = Math.min(i0 + 1, from - 1)
    const w = src - i0
    m[i0 * to + j] += 1 - w
    m[i1 * to + j] += w
  }
  return m
}

export class LatentOperator implements ModelInfo {
  readonly kind = 'operator'
  private readonly input: Linear
  private readonly output: Linear
  private readonly finalNorm: Norm
  private readonly outNorm: Norm
  private readonly time1: Linear
  private readonly time2: Linear
  private readonly down: {layers: Layer[]; proj: Linear}[] = []
  private readonly bottleneck: Layer[]
  private readonly up: {proj: Linear; layers: Layer[]}[] = []
  /** Token count per level, e.g. 32, 16, 8. */
  readonly levelTokens: number[]
  private readonly upMats: {m: tf.Tensor2D; mT: tf.Tensor2D}[] = []
  private readonly timeEmbedDim: number

  constructor(readonly store: ParamStore, readonly options: OperatorOptions, private readonly prefix = 'operator') {
    checkOperatorOptions(options)
    const {inputDim, hiddenDim: h, depths} = options
    const mlp = Math.max(1, Math.round(h * options.mlpRatio))
    const p = prefix
    this.timeEmbedDim = options.timeEmbedDim ?? 32
    this.time1 = createLinear(store, `${p}/time/fc1`, this.timeEmbedDim, h)
    this.time2 = createLinear(store, `${p}/time/fc2`, h, inputDim)
    this.input = createLinear(store, `${p}/input`, inputDim, h)
    const makeLayer = (name: string): Layer => ({
      attnNorm: createLayerNorm(store, `${name}/attn_norm`, h),
      qkv: createLinear(store, `${name}/attn/qkv`, options.groupSize, 3 * options.groupSize),
      qNorm: createRmsNorm(store, `${name}/attn/q_norm`, options.groupSize),
      kNorm: createRmsNorm(store, `${name}/attn/k_norm`, options.groupSize),
      out: createLinear(store, `${name}/attn/out`, options.groupSize, options.groupSize),
      mlpNorm: createLayerNorm(store, `${name}/mlp_norm`, h),
      fc1: createLinear(store, `${name}/mlp/fc1`, h, mlp),
      fc2: createLinear(store, `${name}/mlp/fc2`, mlp, h),
      gq: store.get(`${name}/attn/q_norm/g`),
      gk: store.get(`${name}/attn/k_norm/g`),
    })
    const levels = depths.length
    this.levelTokens = [options.tokens]
    for (let l = 0; l < levels - 1; l++) this.levelTokens.push(Math.max(1, Math.ceil(this.levelTokens[l] / 2)))
    for (let l = 0; l < levels - 1; l++) {
      const layers = Array.from({length: depths[l]}, (_, i) => makeLayer(`${p}/down${l}/layer${i}`))
      this.down.push({layers, proj: createLinear(store, `${p}/down${l}/proj`, h, h)})
    }
    this.bottleneck = Array.from({length: depths[levels - 1]}, (_, i) => makeLayer(`${p}/bottleneck/layer${i}`))
    for (let l = levels - 2; l >= 0; l--) {
      const proj = createLinear(store, `${p}/up${l}/proj`, h, h)
      const layers = Array.from({length: depths[l]}, (_, i) => makeLayer(`${p}/up${l}/layer${i}`))
      this.up.push({proj, layers})
      const from = this.levelTokens[l + 1]
      const to = this.levelTokens[l]
      const m = tf.tensor2d(interpolationMatrix(from, to), [from, to])
      this.upMats.push({m, mT: tf.keep(tf.transpose(m))})
      tf.keep(m)
    }
    this.finalNorm = createLayerNorm(store, `${p}/final_norm`, h)
    this.output = createLinear(store, `${p}/output`, h, inputDim)
    // Zero gain: the operator starts as persistence (z_next = z) and learns the update from
    // there; a unit gain starts every step with a full-variance random jump, which takes
    // thousands of optimizer steps to unlearn before the model beats persistence.
    // eps = 1 (not 1e-5): an update is a few percent of z, far below eps, where the norm is
    // linear, so the update's size can differ between tokens (a shock moves, flat regions do
    // not); with eps 1e-5 every token's update had the same RMS. Its zero mean over the latent
    // dims is matched by the autoencoder's centred latents.
    this.outNorm = createLayerNorm(store, `${p}/out_norm`, inputDim, OUT_NORM_EPS, 'zeros')
  }

  /** One transformer layer on x [B*T, C]. */
  private layer(L: Layer, x: tf.Tensor2D, batch: number, tokens: number, ctx: Ctx): tf.Tensor2D {
    const {groupSize: gs, numHeads: heads, hiddenDim: c} = this.options
    const groups = c / gs
    const hd = gs / heads
    const rows = batch * tokens * groups
    const hN = view<tf.Tensor2D>(L.attnNorm.apply(x), [rows, gs])
    const qkv = L.qkv.apply(hN)
    const shape: GroupAttentionShape = {batch, tokens, groups, heads, headDim: hd, eps: RMS_EPS}
    const [gq, gk] = [L.gq as tf.Tensor1D, L.gk as tf.Tensor1D]
    const merged = useFusedAttention()
      ? fusedGroupAttention(qkv, gq, gk, shape)
      : useWebgpuPrograms() && webgpuAttentionFits(shape)
        ? webgpuGroupAttention(qkv, gq, gk, shape)
        : groupAttentionOps(qkv, L.qNorm, L.kNorm, shape)
    const a = view<tf.Tensor2D>(L.out.apply(merged), [batch * tokens, c])
    const x1 = tf.add(x, dropout(a, this.options.dropout, ctx)) as tf.Tensor2D
    const m = L.fc2.apply(dropout(gelu(L.fc1.apply(L.mlpNorm.apply(x1))), this.options.dropout, ctx))
    return tf.add(x1, dropout(m, this.options.dropout, ctx)) as tf.Tensor2D
  }

  /** Pairwise mean over tokens: [B*T, C] -> [B*ceil(T/2), C] (odd T repeats the last token). */
  private downsample(x: tf.Tensor2D, batch: number, tokens: number): tf.Tensor2D {
    const c = this.options.hiddenDim
    let x3 = view<tf.Tensor3D>(x, [batch, tokens, c])
    if (tokens === 1) return x
    if (tokens % 2 === 1) x3 = tf.concat([x3, tf.slice(x3, [0, tokens - 1, 0], [batch, 1, c])], 1)
    const half = x3.shape[1] / 2
    return view<tf.Tensor2D>(tf.mean(view(x3, [batch, half, 2, c]), 2), [batch * half, c])
  }

  /** Linear interpolation of tokens with a constant matrix: [B*Ts, C] -> [B*Tt, C]. */
  private upsample(x: tf.Tensor2D, batch: number, from: number, to: number, mats: {m: tf.Tensor2D; mT: tf.Tensor2D}): tf.Tensor2D {
    if (from === to) return x
    const c = this.options.hiddenDim
    const xt = permute<tf.Tensor2D>(x, [batch, from, c], [0, 2, 1], [batch * c, from])
    const up = constMatmul(xt, mats.m, mats.mT)
    return permute<tf.Tensor2D>(up, [batch, c, to], [0, 2, 1], [batch * to, c])
  }

  /** z [B, T, D], dt per sample [B] (or one value) -> z_next [B, T, D]. */
  forward(z: tf.Tensor3D, dt: number | ArrayLike<number>, ctx: Ctx = {training: false}): tf.Tensor3D {
    const [batch, tokens, d] = z.shape
    if (tokens !== this.options.tokens || d !== this.options.inputDim) {
      throw new Error(`operator expects [B, ${this.options.tokens}, ${this.options.inputDim}], got [${z.shape}]`)
    }
    const dts = typeof dt === 'number' ? new Array<number>(batch).fill(dt) : Array.from(dt)
    const temb = this.time2.apply(silu(this.time1.apply(scalarEmbedding(dts, this.timeEmbedDim))))
    const zIn = view<tf.Tensor2D>(tf.add(z, view(temb, [batch, 1, d])), [batch * tokens, d])
    let x = this.input.apply(zIn)
    const skips: tf.Tensor2D[] = []
    for (let l = 0; l < this.down.length; l++) {
      const t = this.levelTokens[l]
      for (const L of this.down[l].layers) x = this.layer(L, x, batch, t, ctx)
      skips.push(x)
      x = this.down[l].proj.apply(this.downsample(x, batch, t))
    }
    const tb = this.levelTokens[this.levelTokens.length - 1]
    for (const L of this.bottleneck) x = this.layer(L, x, batch, tb, ctx)
    for (let u = 0; u < this.up.length; u++) {
      const l = this.down.length - 1 - u
      x = this.upsample(x, batch, this.levelTokens[l + 1], this.levelTokens[l], this.upMats[u])
      x = tf.add(x, this.up[u].proj.apply(skips[l])) as tf.Tensor2D
      for (const L of this.up[u].layers) x = this.layer(L, x, batch, this.levelTokens[l], ctx)
    }
    const core = this.output.apply(this.finalNorm.apply(x))
    const delta = view<tf.Tensor3D>(this.outNorm.apply(core), [batch, tokens, d])
    return tf.add(z, delta) as tf.Tensor3D
  }

  paramCount(): number {
    return this.store.names().filter((n) => n.startsWith(this.prefix + '/')).reduce((s, n) => s + this.store.get(n).size, 0)
  }

  /** Rough bytes of activations kept for backward per training step (float32). */
  activationBytes(batch: number): number {
    const {hiddenDim: c, groupSize: gs, numHeads: heads, mlpRatio, depths, inputDim: d} = this.options
    const mlp = Math.round(c * mlpRatio)
    const groups = c / gs
    let floats = batch * this.options.tokens * d * 6
    const layerFloats = (t: number): number =>
      batch * t * (c * 8 + gs * groups * 6 + mlp * 5) + batch * groups * heads * t * t * 3
    depths.forEach((depth, l) => {
      const t = this.levelTokens[l]
      const times = l === depths.length - 1 ? 1 : 2
      floats += times * depth * layerFloats(t) + batch * t * c * 4
    })
    return floats * 4
  }

  /** Multiply-add FLOPs (2 per MAC) of the matMuls in one forward pass. */
  matmulFlops(batch: number): number {
    const {hiddenDim: c, groupSize: gs, numHeads: heads, mlpRatio, depths, inputDim: d} = this.options
    const mlp = Math.round(c * mlpRatio)
    const groups = c / gs
    const hd = gs / heads
    const t0 = this.options.tokens
    let macs = 2 * batch * t0 * d * c // input + output projections
    const layerMacs = (t: number): number =>
      batch * t * groups * (gs * 3 * gs + gs * gs) + 2 * batch * groups * heads * t * t * hd + 2 * batch * t * c * mlp
    depths.forEach((depth, l) => {
      const t = this.levelTokens[l]
      const times = l === depths.length - 1 ? 1 : 2
      macs += times * depth * layerMacs(t)
      if (l < depths.length - 1) macs += batch * this.levelTokens[l + 1] * c * c + batch * t * c * c + batch * c * this.levelTokens[l + 1] * t
    })
    return 2 * macs
  }

  dispose(): void {
    for (const {m, mT} of this.upMats) {
      m.dispose()
      mT.dispose()
    }
  }
}
