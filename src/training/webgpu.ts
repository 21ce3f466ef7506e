/**
 * The WebGPU backend's plumbing: Dawn (the `webgpu` package's prebuilt dawn.node) drives any
 * Vulkan GPU. Set-up order matters: the package's globals and `navigator.gpu` must exist before
 * `@tensorflow/tfjs-backend-webgpu` is imported, or it never registers the backend.
 * probeWebgpu() says which adapter Dawn would use, or why there is none and how to fix it; it
 * looks for libvulkan and an ICD itself first, so hosts without Vulkan never load Dawn (which
 * prints native warnings to stderr when Vulkan is missing).
 */
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {basename, join} from 'node:path'

export type WebgpuProblem = 'no-webgpu-package' | 'no-libvulkan' | 'no-icd' | 'adapter-rejected' | 'software-adapter'

export interface WebgpuAdapterInfo {
  vendor: string
  architecture: string
  device: string
  description: string
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader): correct but slower than wasm. */
  software: boolean
}

export interface IcdFile {
  path: string
  /** The driver library it names, and whether that library could be found. */
  library: string | null
  libraryFound: boolean
}

export interface VulkanSearch {
  /** Where libvulkan.so.1 was found (a path, or 'ld.so.cache'), null when nowhere. */
  libvulkan: string | null
  /** Set when VK_ICD_FILENAMES / VK_DRIVER_FILES chooses the ICDs (the loader then ignores the usual folders). */
  icdVariable: string | null
  icds: IcdFile[]
  /** ICD manifests in places the loader does not search (the NVIDIA container runtime's folder). */
  hiddenIcds: string[]
}

export interface WebgpuProbe {
  /** True when `webgpu` would be used under the given policy. */
  available: boolean
  adapter: WebgpuAdapterInfo | null
  problem: WebgpuProblem | null
  /** One line for doctor and the backend log. */
  detail: string
  fix: string | null
  vulkan: VulkanSearch
}

export interface WebgpuFs {
  exists(path: string): boolean
  readdir(path: string): string[]
  readText(path: string): string
}

export interface WebgpuDeps {
  env?: Record<string, string | undefined>
  /** Use a software adapter (default false: `auto` must not pick a CPU emulation of a GPU). */
  allowSoftware?: boolean
  importModule?: (name: string) => Promise<unknown>
  fs?: WebgpuFs
}

const realFs: WebgpuFs = {
  exists: existsSync,
  readdir: (p) => {
    try {
      return readdirSync(p)
    } catch {
      return []
    }
  },
  readText: (p) => readFileSync(p, 'latin1'),
}

const LIB_DIRS = [
  '/usr/local/nvidia/lib64',
  '/usr/local/nvidia/lib',
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/lib',
]

function libDirs(env: Record<string, string | undefined>): string[] {
  return [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LIB_DIRS]
}

function findLibrary(name: string, env: Record<string, string | undefined>, fs: WebgpuFs): string | null {
  for (const dir of libDirs(env)) if (fs.exists(join(dir, name))) return join(dir, name)
  try {
    if (fs.readText('/etc/ld.so.cache').includes(name)) return 'ld.so.cache'
  } catch {
    // no cache: only the folders count
  }
  return null
}

/** The folders the Vulkan loader reads ICD manifests from when no variable overrides them. */
function icdDirs(env: Record<string, string | undefined>): string[] {
  const config = (env.XDG_CONFIG_DIRS || '/etc/xdg').split(':')
  const data = (env.XDG_DATA_DIRS || '/usr/local/share:/usr/share').split(':')
  const home = env.HOME ? [join(env.HOME, '.local/share')] : []
  return [...config, '/etc', ...home, ...data, '/usr/local/share', '/usr/share']
    .filter(Boolean)
    .map((d) => join(d, 'vulkan', 'icd.d'))
    .filter((d, i, all) => all.indexOf(d) === i)
}

function readIcd(path: string, env: Record<string, string | undefined>, fs: WebgpuFs): IcdFile {
  try {
    const json = JSON.parse(fs.readText(path)) as {ICD?: {library_path?: string}}
    const library = json.ICD?.library_path ?? null
    if (!library) return {path, library: null, libraryFound: false}
    const found = library.includes('/') ? fs.exists(library) : findLibrary(library, env, fs) !== null
    return {path, library, libraryFound: found}
  } catch {
    return {path, library: null, libraryFound: false}
  }
}

/** Where libvulkan and the ICD manifests are, as the Vulkan loader would look. */
export function findVulkan(env: Record<string, string | undefined>, fs: WebgpuFs = realFs): VulkanSearch {
  const libvulkan = findLibrary('libvulkan.so.1', env, fs)
  const variable = env.VK_DRIVER_FILES ? 'VK_DRIVER_FILES' : env.VK_ICD_FILENAMES ? 'VK_ICD_FILENAMES' : null
  let paths: string[]
  if (variable) {
    paths = (env[variable] ?? '').split(':').filter((p) => p && fs.exists(p))
  } else {
    paths = icdDirs(env).flatMap((d) => fs.readdir(d).filter((f) => f.endsWith('.json')).map((f) => join(d, f)))
  }
  const hiddenIcds = HIDDEN_ICD_DIRS.flatMap((d) => fs.readdir(d).filter((f) => f.endsWith('.json')).map((f) => join(d, f)))
  return {libvulkan, icdVariable: variable ? `${variable}=${env[variable]}` : null, icds: paths.map((p) => readIcd(p, env, fs)), hiddenIcds}
}

const HIDDEN_ICD_DIRS = ['/usr/local/nvidia/share/vulkan/icd.d', '/usr/local/nvidia/etc/vulkan/icd.d']

const SETUP_HINT = 'without a GPU (CI), run scripts/setup-software-vulkan.sh and use the environment it prints'
const NVIDIA_HINT = 'on an NVIDIA host, expose the driver\'s Vulkan ICD in the container (NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics)'

/** Why Dawn found no adapter, from what the Vulkan search saw. */
export function diagnoseNoAdapter(v: VulkanSearch): Pick<WebgpuProbe, 'problem' | 'detail' | 'fix'> {
  if (!v.libvulkan) {
    return {
      problem: 'no-libvulkan',
      detail: 'no Vulkan loader (libvulkan.so.1) on this host',
      fix: `Install the Vulkan loader (Debian/Ubuntu: apt-get install libvulkan1); ${NVIDIA_HINT}; ${SETUP_HINT}.`,
    }
  }
  const usable = v.icds.filter((i) => i.libraryFound)
  if (usable.length === 0) {
    const why = v.icds.length > 0
      ? `the ICD manifests name driver libraries that are missing (${v.icds.map((i) => `${basename(i.path)} -> ${i.library ?? '?'}`).join(', ')})`
      : v.icdVariable
        ? `${v.icdVariable} names no existing ICD manifest`
        : 'no Vulkan driver (ICD manifest in */vulkan/icd.d) found'
    const hidden = v.hiddenIcds.find((p) => !v.icds.some((i) => i.path === p))
    const first = hidden
      ? `export VK_ICD_FILENAMES=${hidden} (the loader does not search that folder)`
      : v.icdVariable
        ? 'point VK_ICD_FILENAMES at an existing ICD JSON'
        : null
    return {problem: 'no-icd', detail: why, fix: `${first ? `${first}; ` : ''}${NVIDIA_HINT}; ${SETUP_HINT}.`}
  }
  return {
    problem: 'adapter-rejected',
    detail: `Dawn found no usable adapter although Vulkan drivers are configured (${usable.map((i) => basename(i.library ?? i.path)).join(', ')}): the driver failed to load or lacks features Dawn needs (Mesa older than 25 does)`,
    fix: `On NVIDIA, check that the driver's Vulkan library is mounted (NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics) and that glvnd is installed (apt-get install libglvnd0 libglx0: libGLX_nvidia needs libGLdispatch); use Mesa 25+ for software Vulkan; ${SETUP_HINT}.`,
  }
}

interface GpuAdapterLike {
  info?: {vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean}
  isFallbackAdapter?: boolean
}

interface WebgpuModule {
  create(flags: string[]): {requestAdapter(o?: object): Promise<GpuAdapterLike | null>}
  globals: Record<string, unknown>
}

let installed: Promise<{requestAdapter(o?: object): Promise<GpuAdapterLike | null>}> | null = null

/**
 * Assigns the WebGPU globals (GPUBufferUsage, ...) and navigator.gpu once per process; must run
 * before `@tensorflow/tfjs-backend-webgpu` is imported.
 */
export function installWebgpuGlobals(importModule: (name: string) => Promise<unknown> = (n) => import(n)): Promise<{requestAdapter(o?: object): Promise<GpuAdapterLike | null>}> {
  installed ??= (async () => {
    const mod = (await importModule('webgpu')) as WebgpuModule
    Object.assign(globalThis, mod.globals)
    const gpu = mod.create([])
    const nav = (globalThis as {navigator?: object}).navigator
    Object.defineProperty(globalThis, 'navigator', {value: {...nav, gpu}, configurable: true, writable: true})
    return gpu
  })()
  installed.catch(() => (installed = null))
  return installed
}

export function adapterInfo(adapter: GpuAdapterLike): WebgpuAdapterInfo {
  const i = adapter.info ?? {}
  const text = `${i.vendor ?? ''} ${i.architecture ?? ''} ${i.device ?? ''} ${i.description ?? ''}`
  const software = Boolean(i.isFallbackAdapter ?? adapter.isFallbackAdapter) || i.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(text)
  return {vendor: i.vendor ?? '', architecture: i.architecture ?? '', device: i.device ?? '', description: i.description ?? '', software}
}

export function describeAdapter(a: WebgpuAdapterInfo): string {
  const name = a.description || a.device || 'unknown device'
  return `${name} (vendor ${a.vendor || '?'}${a.architecture ? `, ${a.architecture}` : ''}${a.software && a.architecture !== 'software' ? ', software' : ''})`
}

/** Which adapter Dawn offers here, or why there is none (never throws). */
export async function probeWebgpu(deps: WebgpuDeps = {}): Promise<WebgpuProbe> {
  const env = deps.env ?? {}
  const vulkan = findVulkan(env, deps.fs ?? realFs)
  const none = (p: Pick<WebgpuProbe, 'problem' | 'detail' | 'fix'>): WebgpuProbe => ({available: false, adapter: null, vulkan, ...p})
  if (!vulkan.libvulkan || !vulkan.icds.some((i) => i.libraryFound)) return none(diagnoseNoAdapter(vulkan))
  let gpu
  try {
    gpu = await installWebgpuGlobals(deps.importModule)
  } catch (error) {
    return none({problem: 'no-webgpu-package', detail: `the webgpu package does not load: ${(error as Error).message.split('\n')[0]}`, fix: 'Run `npm ci` in the project folder (webgpu ships dawn.node for linux-x64).'})
  }
  const adapter = await gpu.requestAdapter({powerPreference: 'high-performance'}).catch(() => null)
  if (!adapter) return none(diagnoseNoAdapter(vulkan))
  const info = adapterInfo(adapter)
  if (info.software && !deps.allowSoftware) {
    return {
      available: false,
      adapter: info,
      vulkan,
      problem: 'software-adapter',
      detail: `only a software adapter: ${describeAdapter(info)}; auto skips it`,
      fix: 'It is a CPU emulation (slower than wasm); use it anyway with --backend webgpu or UPS_WEBGPU_ALLOW_SOFTWARE=1.',
    }
  }
  return {available: true, adapter: info, vulkan, problem: null, detail: describeAdapter(info), fix: null}
}
