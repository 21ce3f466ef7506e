/**
 * Training benchmark: one latent-operator training step (forward + backward + Adam) for the
 * 32-dim config (latent 32 x 32 tokens, pdet hidden 96, group 12, heads 6, depths [1,1,1],
 * batch 64) on each backend: ms/step, samples/s, achieved GFLOP/s (matMul FLOPs only: forward
 * plus the two backward matMuls per forward matMul) and a per-kernel profile.
 * The PyTorch peer (85 ms/step on 1 thread, OpenBLAS; see DESIGN.md) is not run here.
 * Run alone: node --import tsx bench/training.ts [wasm cpu]
 */
import {resolveBackend} from '../src/training/backend.js'
import {trainingLoss} from '../src/training/losses.js'
import {LatentOperator} from '../src/training/models/operator.js'
import {Optimizer} from '../src/training/optim.js'
import {ParamStore} from '../src/training/params.js'
import {Rng} from '../src/training/rng.js'
import {trainStep} from '../src/training/step.js'

export interface TrainingBenchRow {
  backend: string
  msPerStep: number
  samplesPerSec: number
  gflopPerSec: number
  steps: number
  /** Kernel name -> ms in one profiled step, largest first. */
  kernels: {name: string; ms: number; share: number}[]
}

export interface TrainingBenchResult {
  config: Record<string, unknown>
  paramCount: number
  flopsPerStep: number
  rows: TrainingBenchRow[]
  /** Measured PyTorch figure quoted from DESIGN.md for context (not re-measured). */
  pytorchReferenceMs: number
}

const CONFIG = {inputDim: 32, hiddenDim: 96, depths: [1, 1, 1], groupSize: 12, numHeads: 6, mlpRatio: 2, dropout: 0, tokens: 32}
const BATCH = 64

export async function benchTraining(backends: Array<'wasm' | 'cpu'> = ['wasm', 'cpu'], log: (line: string) => void = (l) => console.log(l)): Promise<TrainingBenchResult> {
  const rows: TrainingBenchRow[] = []
  let paramCount = 0
  let flopsPerStep = 0
  for (const backend of backends) {
    const {tf} = await resolveBackend(backend)
    const store = new ParamStore(new Rng(0))
    const op = new LatentOperator(store, CONFIG)
    paramCount = op.paramCount()
    flopsPerStep = 3 * op.matmulFlops(BATCH)
    const rng = new Rng(1)
    const z0 = tf.tensor3d(rng.fillNormal(BATCH * 32 * 32), [BATCH, 32, 32])
    const z1 = tf.tensor3d(rng.fillNormal(BATCH * 32 * 32), [BATCH, 32, 32])
    const optimizer = new Optimizer(store, {type: 'adam', lr: 1e-3})
    let step = 0
    const one = (): void => {
      trainStep({store, optimizer, lossFns: [() => trainingLoss(op.forward(z0, 0.1), z1)], context: {stage: 'bench', epoch: 0, step: step++}})
    }
    one() // warm-up: kernel compilation, allocation
    const steps = backend === 'cpu' ? 2 : 5
    const t0 = performance.now()
    for (let i = 0; i < steps; i++) one()
    const ms = (performance.now() - t0) / steps
    const profile = await tf.profile(() => one())
    const byKernel = new Map<string, number>()
    // 'forward' (customGrad) and '*__op' entries wrap kernels that are also listed: skip them.
    for (const k of profile.kernels.filter((k) => k.name !== 'forward' && !k.name.endsWith('__op'))) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + Number(k.kernelTimeMs))
    const total = [...byKernel.values()].reduce((a, b) => a + b, 0)
    const kernels = [...byKernel.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([name, kms]) => ({name, ms: kms, share: kms / total}))
    const row = {backend, msPerStep: ms, samplesPerSec: (BATCH * 1000) / ms, gflopPerSec: flopsPerStep / ms / 1e6, steps, kernels}
    rows.push(row)
    tf.dispose([z0, z1])
    optimizer.dispose()
    op.dispose()
    store.dispose()
    log(
      `training step [${backend}]: ${ms.toFixed(0)} ms/step, ${row.samplesPerSec.toFixed(0)} samples/s, ${row.gflopPerSec.toFixed(2)} GFLOP/s` +
        ` (${(ms / 85).toFixed(1)}x PyTorch's 85 ms reference)`,
    )
    log(`  kernels: ${kernels.map((k) => `${k.name} ${(100 * k.share).toFixed(0)}%`).join(', ')}`)
  }
  return {config: {...CONFIG, batch: BATCH}, paramCount, flopsPerStep, rows, pytorchReferenceMs: 85}
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const args = process.argv.slice(2).filter((a) => a === 'wasm' || a === 'cpu') as Array<'wasm' | 'cpu'>
  await benchTraining(args.length > 0 ? args : undefined)
}
