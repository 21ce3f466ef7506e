/**
 * Picks the TensorFlow.js backend at run time: tfjs-node-gpu (with a CUDA GPU) -> webgpu (Dawn on
 * a Vulkan GPU; a software adapter only when asked for) -> tfjs-node -> wasm -> pure-JS cpu. Everything is imported lazily so commands that do not train never load tfjs.
 * tfjs-node(-gpu) are optional dependencies (their install downloads libtensorflow), so their
 * absence is an ordinary "not available", not an error.
 */
import {existsSync, readdirSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {installWebgpuGlobals, probeWebgpu, type WebgpuAdapterInfo, type WebgpuFs} from './webgpu.js'

export type BackendRequest = 'auto' | 'tensorflow' | 'tensorflow-gpu' | 'webgpu' | 'wasm' | 'cpu'
export type BackendName = 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu'
export type Tf = typeof import('@tensorflow/tfjs')

export interface BackendAttempt {
  name: BackendName
  ok: boolean
  detail: string
}

export interface ResolvedBackend {
  tf: Tf
  /** Which backend runs the math. */
  name: BackendName
  /** Why it was chosen, for the log and the run directory. */
  reason: string
  tried: BackendAttempt[]
  /** The GPU behind `webgpu` (record it with step times: dry-run estimates use measured figures). */
  adapter?: WebgpuAdapterInfo
}

export interface BackendProbe {
  name: BackendName
  available: boolean
  detail: string
}

export interface BackendDeps {
  /** True when the host has a CUDA GPU the driver exposes (default: /proc/driver/nvidia/gpus). */
  hasCudaGpu?: () => boolean
  /** Imports a module by name (tests pass a fake to simulate tfjs-node). */
  importModule?: (name: string) => Promise<unknown>
  /** Environment for the Vulkan search and UPS_WEBGPU_ALLOW_SOFTWARE=1 (default: process.env). */
  env?: Record<string, string | undefined>
  /** File access for the Vulkan search (tests pass a fake). */
  fs?: WebgpuFs
}

interface MinimalLogger {
  info(obj: object, msg?: string): void
  debug?(obj: object, msg?: string): void
}

const ORDER: BackendName[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu']

function defaultHasCudaGpu(): boolean {
  const dir = '/proc/driver/nvidia/gpus'
  try {
    return existsSync(dir) && readdirSync(dir).length > 0
  } catch {
    return false
  }
}

// A variable specifier keeps TypeScript from requiring the optional packages at build time.
const defaultImport = (name: string): Promise<unknown> => import(name)

function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.split('\n')[0].slice(0, 200)
}

/**
 * Tries one backend; resolves to the tf namespace when it is usable, else throws why not.
 * `explicit`: the user named this backend (then a software WebGPU adapter is acceptable).
 */
async function tryBackend(name: BackendName, deps: Required<Omit<BackendDeps, 'fs'>> & {fs?: WebgpuFs}, explicit = false): Promise<{tf: Tf; detail: string; adapter?: WebgpuAdapterInfo}> {
  switch (name) {
    case 'webgpu': {
      const allowSoftware = explicit || deps.env.UPS_WEBGPU_ALLOW_SOFTWARE === '1'
      const probe = await probeWebgpu({env: deps.env, allowSoftware, importModule: deps.importModule, fs: deps.fs})
      if (!probe.available) throw Object.assign(new Error(probe.detail), {fix: probe.fix})
      // Globals first (probeWebgpu installed them), then the backend package, then the umbrella.
      await installWebgpuGlobals(deps.importModule)
      const tf = (await deps.importModule('@tensorflow/tfjs')) as Tf
      await deps.importModule('@tensorflow/tfjs-backend-webgpu')
      tf.env().set('PROD', true)
      // A failed init returns false but leaves getBackend() === 'webgpu' with every op throwing.
      if (!(await tf.setBackend('webgpu'))) throw new Error(`setBackend("webgpu") returned false on ${probe.detail}`)
      const check = await tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1)).data()
      if (check[1] !== 3) throw new Error(`webgpu computed 2 + 1 = ${check[1]} on ${probe.detail}`)
      return {tf, detail: `WebGPU (Dawn/Vulkan) on ${probe.detail}`, adapter: probe.adapter ?? undefined}
    }
    case 'tensorflow-gpu': {
      if (!deps.hasCudaGpu()) throw new Error('no CUDA GPU visible (no NVIDIA driver devices)')
      const tf = (await deps.importModule('@tensorflow/tfjs-node-gpu')) as Tf
      if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend("tensorflow") returned false')
      return {tf, detail: 'libtensorflow with CUDA'}
    }
    case 'tensorflow': {
      const tf = (await deps.importModule('@tensorflow/tfjs-node')) as Tf
      if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend("tensorflow") returned false')
      return {tf, detail: 'libtensorflow on CPU'}
    }
    case 'wasm': {
      const tf = (await deps.importModule('@tensorflow/tfjs')) as Tf
      tf.env().set('PROD', true) // no console banner (see the cpu case)
      const wasm = (await deps.importModule('@tensorflow/tfjs-backend-wasm')) as {
        setWasmPaths(prefix: string): void
      }
      // In Node the .wasm binaries must be found next to the package's entry point.
      const require = createRequire(import.meta.url)
      wasm.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/')
      if (!(await tf.setBackend('wasm'))) throw new Error('setBackend("wasm") returned false')
      const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT')
      return {tf, detail: `WebAssembly${simd ? ' with SIMD' : ''}, single-threaded under Node`}
    }
    case 'cpu': {
      const tf = (await deps.importModule('@tensorflow/tfjs')) as Tf
      // PROD silences tfjs's console banner ("install tfjs-node"): modules never print.
      tf.env().set('PROD', true)
      if (!(await tf.setBackend('cpu'))) throw new Error('setBackend("cpu") returned false')
      return {tf, detail: 'pure JavaScript (slowest)'}
    }
  }
}

function withDefaults(deps: BackendDeps): Required<Omit<BackendDeps, 'fs'>> & {fs?: WebgpuFs} {
  return {hasCudaGpu: deps.hasCudaGpu ?? defaultHasCudaGpu, importModule: deps.importModule ?? defaultImport, env: deps.env ?? process.env, fs: deps.fs}
}

/**
 * Resolves `requested` to a working backend. `auto` walks the order above and takes the first
 * that loads; a named backend that fails is a UserError naming what went wrong.
 */
export async function resolveBackend(
  requested: BackendRequest = 'auto',
  logger?: MinimalLogger,
  deps: BackendDeps = {},
): Promise<ResolvedBackend> {
  const d = withDefaults(deps)
  const candidates: BackendName[] =
    requested === 'auto' ? ORDER : requested === 'tensorflow' ? ['tensorflow-gpu', 'tensorflow'] : [requested]
  if (!candidates.every((c) => ORDER.includes(c))) {
    throw new UserError(`Unknown backend "${requested}".`, {
      code: 'TRAIN_BACKEND_UNKNOWN',
      hint: 'Use one of: auto, tensorflow, webgpu, wasm, cpu.',
      exitCode: ExitCode.USAGE,
    })
  }
  const tried: BackendAttempt[] = []
  let fix: string | undefined
  for (const name of candidates) {
    try {
      const {tf, detail, adapter} = await tryBackend(name, d, requested !== 'auto')
      await tf.ready()
      tried.push({name, ok: true, detail})
      const skipped = tried.filter((t) => !t.ok).map((t) => `${t.name}: ${t.detail}`)
      const reason =
        requested === 'auto'
          ? `auto: first backend that loads${skipped.length > 0 ? ` (skipped ${skipped.join('; ')})` : ''}; ${detail}`
          : `requested ${requested}; ${detail}`
      logger?.info({backend: name, reason}, `tfjs backend: ${name}`)
      return {tf, name, reason, tried, adapter}
    } catch (error) {
      tried.push({name, ok: false, detail: message(error)})
      fix ??= (error as {fix?: string}).fix ?? undefined
      logger?.debug?.({backend: name, error: message(error)}, `tfjs backend ${name} unavailable`)
    }
  }
  throw new UserError(
    `No usable TensorFlow.js backend for "${requested}": ${tried.map((t) => `${t.name} (${t.detail})`).join(', ')}.`,
    {
      code: 'TRAIN_BACKEND_UNAVAILABLE',
      hint:
        requested === 'auto'
          ? 'Run `npm ci` in the project folder, then `ups doctor`.'
          : (fix ?? 'Try `--backend auto`, or run `ups doctor` to see which backends load here.'),
      exitCode: ExitCode.EXTERNAL,
      details: {tried},
    },
  )
}

/** What `ups doctor` shows: whether each backend loads here (the last one probed stays active). */
export async function probeBackends(deps: BackendDeps = {}): Promise<BackendProbe[]> {
  const d = withDefaults(deps)
  const out: BackendProbe[] = []
  for (const name of ORDER) {
    try {
      const {detail} = await tryBackend(name, d)
      out.push({name, available: true, detail})
    } catch (error) {
      out.push({name, available: false, detail: message(error)})
    }
  }
  return out
}
