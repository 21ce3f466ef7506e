import {secretPresence} from '../util/secrets.js'

export type CheckStatus = 'ok' | 'warn' | 'fail'

export interface DoctorCheck {
  id: string
  status: CheckStatus
  summary: string
  fix?: string
}

export interface BackendProbe {
  name: string
  available: boolean
  detail: string
}

/** What the WebGPU probe saw (src/training/webgpu.ts WebgpuProbe, the fields doctor shows). */
export interface WebgpuReport {
  available: boolean
  adapter: {vendor: string; architecture: string; description: string; software: boolean} | null
  problem: string | null
  detail: string
  fix: string | null
}

export interface DoctorDeps {
  env: NodeJS.ProcessEnv
  nodeVersion: string
  /** Which tfjs backends load here, best first. */
  probeBackends(): Promise<BackendProbe[]>
  /** The GPU adapter Dawn would use for the webgpu backend, or why there is none. */
  probeWebgpu?(): Promise<WebgpuReport>
  /** The vastai CLI's version string, or null when it is not installed. */
  vastaiVersion(): Promise<{bin: string; version: string | null; error?: string}>
}

export interface DoctorResult {
  ok: boolean
  checks: DoctorCheck[]
  backends: BackendProbe[]
  webgpu?: WebgpuReport
  secrets: Record<string, boolean>
}

const MIN_NODE_MAJOR = 20

export async function runDoctor(deps: DoctorDeps): Promise<DoctorResult> {
  const checks: DoctorCheck[] = []
  const major = Number(deps.nodeVersion.replace(/^v/, '').split('.')[0])
  checks.push(
    major >= MIN_NODE_MAJOR
      ? {id: 'node.version', status: 'ok', summary: `Node ${deps.nodeVersion}`}
      : {
          id: 'node.version',
          status: 'fail',
          summary: `Node ${deps.nodeVersion} is older than ${MIN_NODE_MAJOR}`,
          fix: `Install Node ${MIN_NODE_MAJOR} or newer.`,
        },
  )

  const backends = await deps.probeBackends()
  const usable = backends.filter((b) => b.available)
  checks.push(
    usable.length > 0
      ? {id: 'tfjs.backends', status: 'ok', summary: `tfjs backends that load: ${usable.map((b) => b.name).join(', ')}`}
      : {
          id: 'tfjs.backends',
          status: 'fail',
          summary: 'No TensorFlow.js backend loads',
          fix: 'Run `npm ci` in the project folder.',
        },
  )
  const webgpu = deps.probeWebgpu ? await deps.probeWebgpu() : undefined
  const gpus = backends.filter((b) => b.name === 'tensorflow-gpu' || b.name === 'webgpu')
  if (gpus.length > 0 && !gpus.some((b) => b.available)) {
    const why = gpus.map((b) => `${b.name}: ${b.name === 'webgpu' && webgpu ? 'see the WebGPU line' : b.detail}`)
    checks.push({id: 'tfjs.gpu', status: 'warn', summary: `No GPU backend (${why.join('; ')})`})
  }
  if (webgpu) {
    checks.push(
      webgpu.available
        ? {id: 'webgpu.adapter', status: 'ok', summary: `WebGPU adapter: ${webgpu.detail}`}
        : {id: 'webgpu.adapter', status: 'warn', summary: `${webgpu.adapter ? 'WebGPU' : 'No WebGPU adapter'}: ${webgpu.detail}`, fix: webgpu.fix ?? undefined},
    )
  }

  const vast = await deps.vastaiVersion()
  checks.push(
    vast.version
      ? {id: 'vastai.cli', status: 'ok', summary: `vastai ${vast.version} (${vast.bin})`}
      : {
          id: 'vastai.cli',
          status: 'warn',
          summary: `vastai CLI not usable (${vast.error ?? 'not found on PATH'})`,
          fix: 'Install it with `pip install vastai` (needed for offers, launch, instances, monitor), or set UPS_VASTAI_BIN.',
        },
  )

  const secrets = secretPresence(deps.env)
  for (const [name, present] of Object.entries(secrets)) {
    checks.push({
      id: `secrets.${name}`,
      status: present ? 'ok' : 'warn',
      summary: `${name} ${present ? 'is set' : 'is not set'}`,
      fix: present ? undefined : `export ${name}=... (needed only for ${name.startsWith('VAST') ? 'Vast.ai commands' : 'W&B tracking'}).`,
    })
  }

  return {ok: checks.every((c) => c.status !== 'fail'), checks, backends, webgpu, secrets}
}

export function renderDoctor(result: DoctorResult): string {
  const icon: Record<CheckStatus, string> = {ok: '✓', warn: '!', fail: '✗'}
  const lines = result.checks.map((c) => `${icon[c.status]} ${c.summary}${c.fix ? `\n    fix: ${c.fix}` : ''}`)
  lines.push('', 'Backends (auto picks the first available):')
  for (const b of result.backends) lines.push(`  ${b.available ? '✓' : '-'} ${b.name.padEnd(15)} ${b.detail}`)
  lines.push('', result.ok ? 'ups is ready.' : 'ups is not ready: fix the ✗ lines above.')
  return lines.join('\n')
}
