/**
 * zod schemas for the JSON the `vastai` CLI prints with --raw, and the normalised shapes the
 * rest of ups sees. Schemas are loose (extra fields pass) because Vast adds fields often; only
 * the fields we use are checked. Units: Vast reports gpu_ram in MB; we expose GB (MB / 1000,
 * the same factor Vast's own query language uses).
 */
import {z} from 'zod'

const num = z.number().nullable().optional()
const str = z.string().nullable().optional()

export const RawOfferSchema = z.looseObject({
  id: z.number(),
  ask_contract_id: num,
  gpu_name: z.string(),
  num_gpus: z.number(),
  gpu_ram: z.number(),
  dph_total: z.number(),
  reliability: num,
  reliability2: num,
  geolocation: str,
  inet_down: num,
  inet_up: num,
  disk_space: num,
  cuda_max_good: num,
  dlperf: num,
  dlperf_per_dphtotal: num,
  machine_id: num,
  verification: str,
})
export type RawOffer = z.infer<typeof RawOfferSchema>
export const RawOfferListSchema = z.array(RawOfferSchema)

export const RawInstanceSchema = z.looseObject({
  id: z.number(),
  actual_status: str,
  cur_state: str,
  intended_status: str,
  next_state: str,
  label: str,
  gpu_name: str,
  num_gpus: num,
  gpu_ram: num,
  gpu_util: num,
  gpu_temp: num,
  mem_usage: num,
  mem_limit: num,
  disk_usage: num,
  disk_space: num,
  dph_total: num,
  start_date: num,
  ssh_host: str,
  ssh_port: num,
  public_ipaddr: str,
  status_msg: str,
  image_uuid: str,
  machine_id: num,
  geolocation: str,
  uptime_mins: num,
  vmem_usage: num,
  extra_env: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).nullable().optional(),
})
export type RawInstance = z.infer<typeof RawInstanceSchema>
export const RawInstanceListSchema = z.array(RawInstanceSchema)
/** `show instance ID --raw` of a destroyed or unknown id. */
export const GoneInstanceSchema = z.looseObject({instances: z.null()})

export const CreateResultSchema = z.looseObject({
  success: z.boolean(),
  new_contract: z.number().nullable().optional(),
  msg: str,
  error: str,
})

/** What the CLI writes to stderr on an HTTP error with --raw. */
export const ApiErrorSchema = z.looseObject({
  error: z.literal(true),
  status_code: z.number(),
  msg: z.string().nullable().optional(),
})

/** An offer as ups uses it. */
export interface Offer {
  id: number
  gpuName: string
  numGpus: number
  /** Per GPU, GB. */
  gpuRamGb: number
  /** $/hour, all GPUs, storage included. */
  dphTotal: number
  /** 0..1 */
  reliability: number | null
  location: string | null
  inetDownMbps: number | null
  diskGb: number | null
  cudaMaxGood: number | null
  dlperf: number | null
  /** DLPerf per $/hour: Vast's value-for-money score. */
  dlperfPerDollar: number | null
  machineId: number | null
  verified: boolean | null
}

export type InstanceStatus = 'created' | 'loading' | 'running' | 'stopped' | 'exited' | 'offline' | string

/** An instance as ups uses it. Env values are never carried (Vast echoes secrets there). */
export interface Instance {
  id: number
  /** Vast's actual_status; null while it is being scheduled. */
  status: InstanceStatus | null
  intendedStatus: string | null
  curState: string | null
  statusMsg: string | null
  label: string | null
  gpuName: string | null
  numGpus: number | null
  /** Percent, null until running. */
  gpuUtil: number | null
  gpuTemp: number | null
  /** GB */
  memUsage: number | null
  /** GB, -1 / null until known */
  diskUsage: number | null
  diskGb: number | null
  dphTotal: number | null
  /** Epoch seconds. */
  startDate: number | null
  sshHost: string | null
  sshPort: number | null
  publicIp: string | null
  image: string | null
  machineId: number | null
  location: string | null
  uptimeMins: number | null
  /** Per-GPU memory, GB (Vast's gpu_ram, MB / 1000); optional for older callers. */
  gpuRamGb?: number | null
  /** GPU memory in use, GB (Vast's vmem_usage), when the host reports it. */
  gpuMemUsedGb?: number | null
  /** Names of the env vars set at create time (values omitted on purpose). */
  envKeys: string[]
}

const n = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)

export function toOffer(raw: RawOffer): Offer {
  const dlpd = n(raw.dlperf_per_dphtotal) ?? (raw.dlperf && raw.dph_total > 0 ? raw.dlperf / raw.dph_total : null)
  return {
    id: raw.id,
    gpuName: raw.gpu_name,
    numGpus: raw.num_gpus,
    gpuRamGb: Math.round(raw.gpu_ram / 100) / 10,
    dphTotal: raw.dph_total,
    reliability: n(raw.reliability) ?? n(raw.reliability2),
    location: raw.geolocation ?? null,
    inetDownMbps: n(raw.inet_down),
    diskGb: n(raw.disk_space),
    cudaMaxGood: n(raw.cuda_max_good),
    dlperf: n(raw.dlperf),
    dlperfPerDollar: dlpd,
    machineId: n(raw.machine_id),
    verified: raw.verification == null ? null : raw.verification === 'verified',
  }
}

export function toInstance(raw: RawInstance): Instance {
  const env = raw.extra_env
  const envKeys = Array.isArray(env)
    ? env.map((e) => (Array.isArray(e) ? String(e[0]) : String(e))).filter(Boolean)
    : env
      ? Object.keys(env)
      : []
  return {
    id: raw.id,
    status: raw.actual_status ?? null,
    intendedStatus: raw.intended_status ?? null,
    curState: raw.cur_state ?? null,
    statusMsg: raw.status_msg ?? null,
    label: raw.label ?? null,
    gpuName: raw.gpu_name ?? null,
    numGpus: n(raw.num_gpus),
    gpuUtil: n(raw.gpu_util),
    gpuTemp: n(raw.gpu_temp),
    memUsage: n(raw.mem_usage),
    diskUsage: n(raw.disk_usage),
    diskGb: n(raw.disk_space),
    dphTotal: n(raw.dph_total),
    startDate: n(raw.start_date),
    sshHost: raw.ssh_host ?? null,
    sshPort: n(raw.ssh_port),
    publicIp: raw.public_ipaddr ?? null,
    image: raw.image_uuid ?? null,
    machineId: n(raw.machine_id),
    location: raw.geolocation ?? null,
    uptimeMins: n(raw.uptime_mins),
    gpuRamGb: n(raw.gpu_ram) === null ? null : Math.round((raw.gpu_ram as number) / 100) / 10,
    gpuMemUsedGb: n(raw.vmem_usage),
    envKeys,
  }
}
