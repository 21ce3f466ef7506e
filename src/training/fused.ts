/**
 * Fused kernels in plain JS for the CPU-side backends (wasm, cpu). The operator's channel-separated
 * attention has heads only a few channels wide (group 12 / 6 heads = 2): as tfjs ops it is a
 * split, two RMS norms, five transposes, two batched matMuls, a softmax and their gradients, and
 * the wasm backend runs batched matMuls ~20x slower than plain ones. Here the whole
 * "qkv -> RMS-normalised q/k -> softmax(q k^T / sqrt(hd)) v" block is one customGrad whose forward
 * and backward are loops over Float32Arrays, indexing the [B, T, G, H, hd] layout directly (no
 * transposes). On GPU backends reading tensors back to JS would stall the device, so callers use
 * the tfjs-op formulation there (`useFusedKernels`).
 */
import * as tf from '@tensorflow/tfjs'

type CG = Parameters<typeof tf.customGrad>[0]

export type FusedMode = 'auto' | 'on' | 'off'
let mode: FusedMode = 'auto'

/**
 * 'auto' (default): fused JS kernels on wasm and cpu, tfjs ops elsewhere; 'on'/'off' force one
 * path (tests compare the two; the benchmark measures both). Returns the previous mode.
 */
export function setFusedKernels(next: FusedMode): FusedMode {
  const prev = mode
  mode = next
  return prev
}

/**
 * The JS attention kernel only when forced on: measured by CPU time it is not faster than the
 * tfjs-op formulation on wasm (its softmax exp and gathers in V8 cost about what the batched
 * matMuls do), so 'auto' keeps the ops. The optimizer's fused update is a clear win and follows
 * `useFusedKernels`.
 */
/** The current mode (the WebGPU programs follow it too: 'off' is the tfjs-op reference path). */
export function getFusedMode(): FusedMode {
  return mode
}

export function useFusedAttention(): boolean {
  return mode === 'on'
}

let reference = false

/**
 * The layers as first written (LayerNorm, RMSNorm and the attention scale as plain tfjs ops with
 * tfjs's own gradients): the reference the customGrad formulations are tested against. Returns
 * the previous setting.
 */
export function setReferenceLayers(on: boolean): boolean {
  const prev = reference
  reference = on
  return prev
}

export function useReferenceLayers(): boolean {
  return reference
}

/** True when tensors live in JS-reachable memory (wasm, cpu), so JS kernels are cheap to call. */
export function useFusedKernels(): boolean {
  if (mode !== 'auto') return mode === 'on'
  const b = tf.getBackend()
  return b === 'wasm' || b === 'cpu'
}

export interface GroupAttentionShape {
  batch: number
  tokens: number
  groups: number
  heads: number
  headDim: number
  /** RMSNorm epsilon of q and k. */
  eps: number
}

interface Saved {
  qn: Float32Array
  kn: Float32Array
  rq: Float32Array
  rk: Float32Array
  probs: Float32Array
  out: Float32Array
}

/** RMS-normalises one of q (part 0) or k (part 1) of every row of qkv [rows, 3*gs]. */
function rmsRows(qkv: Float32Array, part: number, gain: Float32Array, rows: number, gs: number, eps: number, outN: Float32Array, outR: Float32Array): void {
  const stride = 3 * gs
  for (let r = 0; r < rows; r++) {
    const o = r * stride + part * gs
    let ss = 0
    for (let c = 0; c < gs; c++) ss += qkv[o + c] * qkv[o + c]
    const inv = 1 / Math.sqrt(ss / gs + eps)
    outR[r] = inv
    const on = r * gs
    for (let c = 0; c < gs; c++) outN[on + c] = qkv[o + c] * inv * gain[c]
  }
}

function headBackward2(qh: Float32Array, kh: Float32Array, vh: Float32Array, doh: Float32Array, T: number, scale: number, probs: Float32Array, pBase: number, out: Float32Array, oBase: number, oStride: number, dq: Float64Array, dk: Float64Array, dv: Float64Array): void {
  for (let t = 0; t < T; t++) {
    const oo = oBase + t * oStride
    const g0 = doh[2 * t]
    const g1 = doh[2 * t + 1]
    const q0 = qh[2 * t]
    const q1 = qh[2 * t + 1]
    const delta = g0 * out[oo] + g1 * out[oo + 1]
    const pRow = pBase + t * T
    let dq0 = 0
    let dq1 = 0
    for (let u = 0; u < T; u++) {
      const p = probs[pRow + u]
      const v0 = vh[2 * u]
      const v1 = vh[2 * u + 1]
      dv[2 * u] += p * g0
      dv[2 * u + 1] += p * g1
      const ds = p * (g0 * v0 + g1 * v1 - delta) * scale
      dq0 += ds * kh[2 * u]
      dq1 += ds * kh[2 * u + 1]
      dk[2 * u] += ds * q0
      dk[2 * u + 1] += ds * q1
    }
    dq[2 * t] = dq0
    dq[2 * t + 1] = dq1
  }
}

/** Scaled scores q k^T of one head into scores[p ..]. */
function headScores(qh: Float32Array, kh: Float32Array, T: number, hd: number, scale: number, scores: Float32Array, p: number): void {
  if (hd === 2) {
    for (let t = 0; t < T; t++) {
      const q0 = qh[2 * t] * scale
      const q1 = qh[2 * t + 1] * scale
      for (let u = 0; u < T; u++) scores[p++] = q0 * kh[2 * u] + q1 * kh[2 * u + 1]
    }
    return
  }
  for (let t = 0; t < T; t++) {
    for (let u = 0; u < T; u++) {
      let dot = 0
      for (let d = 0; d < hd; d++) dot += qh[t * hd + d] * kh[u * hd + d]
      scores[p++] = dot * scale
    }
  }
}

/** out[t] = sum_u P[t, u] v[u] for one head, written at oBase + t * oStride. */
function headValues(probs: Float32Array, pBase: number, vh: Float32Array, T: number, hd: number, out: Float32Array, oBase: number, oStride: number): void {
  for (let t = 0; t < T; t++) {
    const pRow = pBase + t * T
    const oo = oBase + t * oStride
    for (let d = 0; d < hd; d++) {
      let acc = 0
      for (let u = 0; u < T; u++) acc += probs[pRow + u] * vh[u * hd + d]
      out[oo + d] = acc
    }
  }
}

/** Backward of one head for any hd (see headBackward2). */
function headBackward(qh: Float32Array, kh: Float32Array, vh: Float32Array, doh: Float32Array, T: number, hd: number, scale: number, probs: Float32Array, pBase: number, out: Float32Array, oBase: number, oStride: number, dq: Float64Array, dk: Float64Array, dv: Float64Array): void {
  for (let t = 0; t < T; t++) {
    const oo = oBase + t * oStride
    // sum_u P[t,u] dP[t,u] = dO[t] . O[t]
    let delta = 0
    for (let d = 0; d < hd; d++) delta += doh[t * hd + d] * out[oo + d]
    const pRow = pBase + t * T
    for (let u = 0; u < T; u++) {
      const p = probs[pRow + u]
      let dp = 0
      for (let d = 0; d < hd; d++) {
        dp += doh[t * hd + d] * vh[u * hd + d]
        dv[u * hd + d] += p * doh[t * hd + d]
      }
      const ds = p * (dp - delta) * scale
      for (let d = 0; d < hd; d++) {
        dq[t * hd + d] += ds * kh[u * hd + d]
        dk[u * hd + d] += ds * qh[t * hd + d]
      }
    }
  }
}

/** Inverse of gather: writes src [T, hd] into head (b, g, h) of dst. */
function scatter(src: Float64Array, dst: Float32Array, stride: number, col: number, b: number, g: number, T: number, G: number, hd: number): void {
  for (let t = 0; t < T; t++) {
    const o = ((b * T + t) * G + g) * stride + col
    for (let d = 0; d < hd; d++) dst[o + d] = src[t * hd + d]
  }
}

/** Gathers head (b, g, h) of a [B*T*G, stride] array at column offset `col` into dst [T, hd]. */
function gather(src: Float32Array, stride: number, col: number, b: number, g: number, T: number, G: number, hd: number, dst: Float32Array): void {
  for (let t = 0; t < T; t++) {
    const o = ((b * T + t) * G + g) * stride + col
    for (let d = 0; d < hd; d++) dst[t * hd + d] = src[o + d]
  }
}

// exp(x) for x <= 0 (softmax after subtracting the row max): 2^n * 2^f with n = round(x log2 e),
// |f| <= 1/2 and a degree-7 Taylor polynomial for 2^f (relative error < 1e-8, below float32
// rounding). About 2x faster than Math.exp in V8; exp dominates the softmax. (The wasm backend's
// own Exp/Softmax kernels are no faster here, and the round trip costs two copies.)
const POW2_NEG = Float64Array.from({length: 160}, (_, i) => 2 ** -i)
const E1 = Math.LN2
const E2 = E1 ** 2 / 2
const E3 = E1 ** 3 / 6
const E4 = E1 ** 4 / 24
const E5 = E1 ** 5 / 120
const E6 = E1 ** 6 / 720
const E7 = E1 ** 7 / 5040

function expNonPositive(x: number): number {
  const y = x * Math.LOG2E
  const n = Math.floor(y + 0.5)
  if (n < -149) return 0
  const f = y - n
  return (1 + f * (E1 + f * (E2 + f * (E3 + f * (E4 + f * (E5 + f * (E6 + f * E7))))))) * POW2_NEG[-n]
}

/** In-place softmax of rows of length n in a. */
function softmaxRows(a: Float32Array, n: number): void {
  for (let o = 0; o < a.length; o += n) {
    let max = -Infinity
    for (let u = 0; u < n; u++) if (a[o + u] > max) max = a[o + u]
    let sum = 0
    for (let u = 0; u < n; u++) {
      const e = expNonPositive(a[o + u] - max)
      a[o + u] = e
      sum += e
    }
    const inv = 1 / sum
    for (let u = 0; u < n; u++) a[o + u] *= inv
  }
}

function forward(qkv: Float32Array, gq: Float32Array, gk: Float32Array, s: GroupAttentionShape): Saved {
  const {batch: B, tokens: T, groups: G, heads: H, headDim: hd} = s
  const gs = H * hd
  const rows = B * T * G
  const qn = new Float32Array(rows * gs)
  const kn = new Float32Array(rows * gs)
  const rq = new Float32Array(rows)
  const rk = new Float32Array(rows)
  rmsRows(qkv, 0, gq, rows, gs, s.eps, qn, rq)
  rmsRows(qkv, 1, gk, rows, gs, s.eps, kn, rk)
  const scores = new Float32Array(B * G * H * T * T)
  const scale = 1 / Math.sqrt(hd)
  const qh = new Float32Array(T * hd)
  const kh = new Float32Array(T * hd)
  const vh = new Float32Array(T * hd)
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      for (let h = 0; h < H; h++) {
        gather(qn, gs, h * hd, b, g, T, G, hd, qh)
        gather(kn, gs, h * hd, b, g, T, G, hd, kh)
        headScores(qh, kh, T, hd, scale, scores, ((b * G + g) * H + h) * T * T)
      }
    }
  }
  softmaxRows(scores, T)
  const probs = scores
  const out = new Float32Array(rows * gs)
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      for (let h = 0; h < H; h++) {
        gather(qkv, 3 * gs, 2 * gs + h * hd, b, g, T, G, hd, vh)
        headValues(probs, ((b * G + g) * H + h) * T * T, vh, T, hd, out, (b * T * G + g) * gs + h * hd, G * gs)
      }
    }
  }
  return {qn, kn, rq, rk, probs, out}
}

/** Backward of the RMSNorm y = x * r * g (r = 1/sqrt(mean(x^2) + eps)) for q or k rows. */
function rmsBackward(qkv: Float32Array, part: number, gain: Float32Array, dy: Float32Array, r: Float32Array, rows: number, gs: number, dqkv: Float32Array, dGain: Float64Array): void {
  const stride = 3 * gs
  for (let i = 0; i < rows; i++) {
    const o = i * stride + part * gs
    const on = i * gs
    const ri = r[i]
    let dot = 0
    for (let c = 0; c < gs; c++) {
      const u = gain[c] * dy[on + c]
      dot += u * qkv[o + c]
      dGain[c] += dy[on + c] * qkv[o + c] * ri
    }
    const k = (ri * ri * ri * dot) / gs
    for (let c = 0; c < gs; c++) dqkv[o + c] = ri * gain[c] * dy[on + c] - qkv[o + c] * k
  }
}

function backward(qkv: Float32Array, gq: Float32Array, gk: Float32Array, sv: Saved, dOut: Float32Array, s: GroupAttentionShape): {dqkv: Float32Array; dgq: Float32Array; dgk: Float32Array} {
  const {batch: B, tokens: T, groups: G, heads: H, headDim: hd} = s
  const gs = H * hd
  const rows = B * T * G
  const dqn = new Float32Array(rows * gs)
  const dkn = new Float32Array(rows * gs)
  const dqkv = new Float32Array(rows * 3 * gs)
  const scale = 1 / Math.sqrt(hd)
  const qh = new Float32Array(T * hd)
  const kh = new Float32Array(T * hd)
  const vh = new Float32Array(T * hd)
  const doh = new Float32Array(T * hd)
  const dq = new Float64Array(T * hd)
  const dk = new Float64Array(T * hd)
  const dv = new Float64Array(T * hd)
  const {qn, kn, probs, out} = sv
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      for (let h = 0; h < H; h++) {
        gather(qn, gs, h * hd, b, g, T, G, hd, qh)
        gather(kn, gs, h * hd, b, g, T, G, hd, kh)
        gather(qkv, 3 * gs, 2 * gs + h * hd, b, g, T, G, hd, vh)
        gather(dOut, gs, h * hd, b, g, T, G, hd, doh)
        dq.fill(0)
        dk.fill(0)
        dv.fill(0)
        const pBase = ((b * G + g) * H + h) * T * T
        if (hd === 2) headBackward2(qh, kh, vh, doh, T, scale, probs, pBase, out, (b * T * G + g) * gs + h * hd, G * gs, dq, dk, dv)
        else headBackward(qh, kh, vh, doh, T, hd, scale, probs, pBase, out, (b * T * G + g) * gs + h * hd, G * gs, dq, dk, dv)
        scatter(dq, dqn, gs, h * hd, b, g, T, G, hd)
        scatter(dk, dkn, gs, h * hd, b, g, T, G, hd)
        scatter(dv, dqkv, 3 * gs, 2 * gs + h * hd, b, g, T, G, hd)
      }
    }
  }
  const dgq64 = new Float64Array(gs)
  const dgk64 = new Float64Array(gs)
  rmsBackward(qkv, 0, gq, dqn, sv.rq, rows, gs, dqkv, dgq64)
  rmsBackward(qkv, 1, gk, dkn, sv.rk, rows, gs, dqkv, dgk64)
  return {dqkv, dgq: Float32Array.from(dgq64), dgk: Float32Array.from(dgk64)}
}

/**
 * qkv [B*T*G, 3*gs] (rows ordered b, t, g; columns q | k | v, each [H, hd]) with RMSNorm gains
 * gq, gk [gs] -> softmax(qn kn^T / sqrt(hd)) v per (b, g, h), as [B*T*G, gs] in the same layout.
 */
export function fusedGroupAttention(qkv: tf.Tensor2D, gq: tf.Tensor1D, gk: tf.Tensor1D, shape: GroupAttentionShape): tf.Tensor2D {
  const rows = shape.batch * shape.tokens * shape.groups
  const gs = shape.heads * shape.headDim
  const f = tf.customGrad(((x: tf.Tensor2D, a: tf.Tensor1D, c: tf.Tensor1D) => {
    const xs = x.dataSync() as Float32Array
    const as = a.dataSync() as Float32Array
    const cs = c.dataSync() as Float32Array
    const saved = forward(xs, as, cs, shape)
    return {
      value: tf.tensor2d(saved.out, [rows, gs]),
      gradFunc: (dy: tf.Tensor2D) => {
        const g = backward(xs, as, cs, saved, dy.dataSync() as Float32Array, shape)
        return [tf.tensor2d(g.dqkv, [rows, 3 * gs]), tf.tensor1d(g.dgq), tf.tensor1d(g.dgk)]
      },
    }
  }) as unknown as CG)
  return f(qkv, gq, gk) as tf.Tensor2D
}
