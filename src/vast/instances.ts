/**
 * What `ups instances ...` does, over any Provider, plus pure renderers for people.
 */
import {ExitCode, UserError} from '../util/errors.js'
import {table} from './offers.js'
import type {Provider} from './provider.js'
import type {Instance} from './types.js'

export interface InstancesListResult {
  status: string | null
  instances: Instance[]
}

export async function listInstances(provider: Provider, options: {status?: string} = {}): Promise<InstancesListResult> {
  const all = await provider.list()
  const status = options.status ?? null
  return {status, instances: status ? all.filter((i) => (i.status ?? 'scheduling') === status) : all}
}

export interface InstanceActionResult {
  id: number
  action: 'stop' | 'start' | 'destroy'
  ok: true
}

export async function instanceAction(provider: Provider, id: number, action: InstanceActionResult['action']): Promise<InstanceActionResult> {
  await provider[action](id)
  return {id, action, ok: true}
}

/** Confirmation policy for destroy: --yes, else ask on a TTY, else refuse (exit 2). */
export async function confirmDestroy(
  id: number,
  options: {yes: boolean; isTTY: boolean; ask: (question: string) => Promise<boolean>},
): Promise<void> {
  if (options.yes) return
  if (!options.isTTY) {
    throw new UserError(`Refusing to destroy instance ${id} without confirmation (not a terminal).`, {
      code: 'VAST_CONFIRM_REQUIRED',
      hint: `Destroying deletes the instance's disk. To go ahead: ups instances destroy ${id} --yes`,
      exitCode: ExitCode.USAGE,
    })
  }
  const ok = await options.ask(`Destroy instance ${id}? Its disk and everything on it are deleted. [y/N] `)
  if (!ok) {
    throw new UserError(`Not destroying instance ${id}: not confirmed.`, {code: 'VAST_NOT_CONFIRMED', exitCode: ExitCode.USAGE})
  }
}

const dash = (v: unknown) => (v === null || v === undefined ? '-' : String(v))

export function renderInstances(result: InstancesListResult): string {
  if (result.instances.length === 0) return result.status ? `No ${result.status} instances.` : 'No instances.'
  const rows = result.instances.map((i) => [
    String(i.id),
    dash(i.status),
    dash(i.label),
    i.gpuName ? `${i.numGpus ?? 1}x ${i.gpuName}` : '-',
    i.dphTotal === null ? '-' : i.dphTotal.toFixed(4),
    i.gpuUtil === null ? '-' : `${i.gpuUtil.toFixed(0)}%`,
    i.uptimeMins === null ? '-' : `${(i.uptimeMins / 60).toFixed(1)} h`,
    dash(i.image),
  ])
  return table([['ID', 'Status', 'Label', 'GPU', '$/h', 'GPU util', 'Uptime', 'Image'], ...rows])
}

export function renderInstance(i: Instance): string {
  const rows: Array<[string, string]> = [
    ['id', String(i.id)],
    ['status', `${dash(i.status)} (intended: ${dash(i.intendedStatus)})`],
    ['message', dash(i.statusMsg)],
    ['label', dash(i.label)],
    ['gpu', i.gpuName ? `${i.numGpus ?? 1}x ${i.gpuName}` : '-'],
    ['gpu util / temp', `${i.gpuUtil === null ? '-' : i.gpuUtil.toFixed(0) + '%'} / ${i.gpuTemp === null ? '-' : i.gpuTemp.toFixed(0) + ' C'}`],
    ['memory used', i.memUsage === null ? '-' : `${i.memUsage} GB`],
    ['disk', `${i.diskUsage === null || i.diskUsage < 0 ? '-' : i.diskUsage} / ${dash(i.diskGb)} GB`],
    ['$/h', i.dphTotal === null ? '-' : i.dphTotal.toFixed(4)],
    ['image', dash(i.image)],
    ['location', dash(i.location)],
    ['ssh', i.sshHost ? `${i.sshHost}:${dash(i.sshPort)}` : '-'],
    ['env', i.envKeys.length ? i.envKeys.join(', ') + ' (values hidden)' : '-'],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')
}
