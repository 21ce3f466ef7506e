/**
 * A thin W&B HTTP client: the subset of the protocol the Python SDK's internal API and its
 * core file stream speak, over Node's fetch. `@wandb/sdk` has no offline mode, no file
 * uploads and needs the network at init, so ups keeps its own small client.
 *
 * - GraphQL at `<base>/graphql`: viewer, upsertBucket (create/resume a run), createRunFiles
 *   (upload URLs), and project.run {history, summaryMetrics} to read a run back.
 * - File stream at `<base>/files/<entity>/<project>/<run>/file_stream`: history lines appended
 *   at a line offset, the summary as line 0 of wandb-summary.json, `uploaded` file names, and
 *   `complete` + `exitcode` at the end.
 * - File bodies are PUT to the upload URL createRunFiles hands out, with its uploadHeaders and
 *   never with our Authorization header (those URLs usually point at cloud storage).
 *
 * The API key travels only in the Authorization header; no error message here contains it.
 */

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>

export const DEFAULT_WANDB_BASE_URL = 'https://api.wandb.ai'
export const HISTORY_FILE = 'wandb-history.jsonl'
export const SUMMARY_FILE = 'wandb-summary.json'

export interface WandbClientOptions {
  baseUrl: string
  apiKey: string
  fetch: FetchLike
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number
}

/** A failed call. `transient`: worth retrying later (network, 5xx, 429, timeouts). */
export class WandbRequestError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly transient: boolean,
  ) {
    super(message)
    this.name = 'WandbRequestError'
  }
}

export interface UpsertRunInput {
  /** The run's id in the project (W&B calls it `name`; it is the URL slug). */
  name: string
  project: string
  entity?: string
  displayName?: string
  groupName?: string
  jobType?: string
  tags?: string[]
  notes?: string
  config?: Record<string, unknown>
  state?: string
  summaryMetrics?: string
}

export interface UpsertedRun {
  id: string
  name: string
  displayName?: string
  project: string
  entity: string
  historyLineCount: number
  inserted: boolean
}

export interface FileStreamBody {
  files?: Record<string, {offset: number; content: string[]}>
  uploaded?: string[]
  complete?: boolean
  exitcode?: number
}

export interface RunFilesUpload {
  runID: string
  uploadHeaders: string[]
  files: Array<{name: string; uploadUrl: string}>
}

export interface RemoteRun {
  id: string
  name: string
  displayName?: string
  state?: string
  config: Record<string, unknown>
  summary: Record<string, unknown>
  history: Array<Record<string, unknown>>
  historyLineCount?: number
}

const UPSERT_BUCKET = `mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String,
  $groupName: String, $description: String, $displayName: String, $notes: String, $config: JSONString,
  $jobType: String, $state: String, $tags: [String!], $summaryMetrics: JSONString) {
  upsertBucket(input: {id: $id, name: $name, groupName: $groupName, modelName: $project, entityName: $entity,
    description: $description, displayName: $displayName, notes: $notes, config: $config, jobType: $jobType,
    state: $state, tags: $tags, summaryMetrics: $summaryMetrics}) {
    bucket { id name displayName project { id name entity { id name } } historyLineCount }
    inserted
  }
}`

const VIEWER = `query Viewer { viewer { id entity username } }`

const CREATE_RUN_FILES = `mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
  createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
    runID
    uploadHeaders
    files { name uploadUrl }
  }
}`

const RUN_READBACK = `query RunFullHistory($project: String!, $entity: String!, $name: String!, $samples: Int) {
  project(name: $project, entityName: $entity) {
    run(name: $name) { id name displayName state config summaryMetrics historyLineCount history(samples: $samples) }
  }
}`

export class WandbClient {
  readonly baseUrl: string
  private readonly auth: string
  private readonly doFetch: FetchLike
  private readonly timeoutMs: number

  constructor(options: WandbClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.auth = 'Basic ' + Buffer.from(`api:${options.apiKey}`).toString('base64')
    this.doFetch = options.fetch
    this.timeoutMs = options.timeoutMs ?? 30_000
  }

  async graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await this.request(`${this.baseUrl}/graphql`, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Authorization: this.auth},
      body: JSON.stringify({query, variables}),
    })
    const body = (await readJson(response)) as {data?: T; errors?: Array<{message?: string}>}
    if (body.errors && body.errors.length > 0) {
      const message = body.errors.map((e) => e.message ?? 'unknown error').join('; ')
      throw new WandbRequestError(`W&B GraphQL error: ${message}`, response.status, false)
    }
    if (!body.data) throw new WandbRequestError('W&B GraphQL answer has no data', response.status, true)
    return body.data
  }

  async viewer(): Promise<{entity?: string; username?: string}> {
    const data = await this.graphql<{viewer: {entity?: string; username?: string} | null}>(VIEWER)
    if (!data.viewer) throw new WandbRequestError('W&B did not recognise the API key (viewer is empty)', 401, false)
    return data.viewer
  }

  async upsertRun(input: UpsertRunInput): Promise<UpsertedRun> {
    const variables: Record<string, unknown> = {
      name: input.name,
      project: input.project,
      entity: input.entity,
      displayName: input.displayName,
      groupName: input.groupName,
      jobType: input.jobType,
      tags: input.tags,
      notes: input.notes,
      config: input.config ? JSON.stringify(input.config) : undefined,
      state: input.state,
      summaryMetrics: input.summaryMetrics,
    }
    for (const key of Object.keys(variables)) if (variables[key] === undefined) delete variables[key]
    type Answer = {
      upsertBucket: {
        bucket: {id: string; name: string; displayName?: string; historyLineCount?: number; project: {name: string; entity: {name: string}}}
        inserted: boolean
      }
    }
    const {upsertBucket} = await this.graphql<Answer>(UPSERT_BUCKET, variables)
    const b = upsertBucket.bucket
    return {
      id: b.id,
      name: b.name,
      displayName: b.displayName,
      project: b.project?.name ?? input.project,
      entity: b.project?.entity?.name ?? input.entity ?? '',
      historyLineCount: b.historyLineCount ?? 0,
      inserted: upsertBucket.inserted,
    }
  }

  async fileStream(entity: string, project: string, run: string, body: FileStreamBody): Promise<void> {
    const path = [entity, project, run].map(encodeURIComponent).join('/')
    const response = await this.request(`${this.baseUrl}/files/${path}/file_stream`, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Authorization: this.auth},
      body: JSON.stringify(body),
    })
    await response.arrayBuffer()
  }

  async createRunFiles(entity: string, project: string, run: string, files: string[]): Promise<RunFilesUpload> {
    const data = await this.graphql<{createRunFiles: RunFilesUpload | null}>(CREATE_RUN_FILES, {entity, project, run, files})
    if (!data.createRunFiles?.runID) {
      throw new WandbRequestError(`W&B refused uploads to ${entity}/${project}/${run}`, undefined, false)
    }
    return data.createRunFiles
  }

  /** PUTs a file body to an upload URL (relative URLs are on the API host, as on-prem). */
  async uploadFile(uploadUrl: string, data: Uint8Array, uploadHeaders: string[]): Promise<void> {
    const url = uploadUrl.startsWith('/') ? `${this.baseUrl}${uploadUrl}` : uploadUrl
    const headers: Record<string, string> = {'Content-Length': String(data.byteLength)}
    for (const header of uploadHeaders) {
      const colon = header.indexOf(':')
      if (colon > 0) headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim()
    }
    const response = await this.request(url, {method: 'PUT', headers, body: data as unknown as BodyInit})
    await response.arrayBuffer()
  }

  async readRun(entity: string, project: string, run: string, samples = 100_000): Promise<RemoteRun | undefined> {
    type Answer = {project: {run: null | (Omit<RemoteRun, 'config' | 'summary' | 'history'> & Raw)} | null}
    type Raw = {config?: string; summaryMetrics?: string; history?: Array<string | Record<string, unknown>>}
    const data = await this.graphql<Answer>(RUN_READBACK, {entity, project, name: run, samples})
    const r = data.project?.run
    if (!r) return undefined
    return {
      id: r.id,
      name: r.name,
      displayName: r.displayName,
      state: r.state,
      historyLineCount: r.historyLineCount,
      config: unwrapConfig(parseMaybe(r.config)),
      summary: parseMaybe(r.summaryMetrics),
      history: (r.history ?? []).map((row) => (typeof row === 'string' ? (JSON.parse(row) as Record<string, unknown>) : row)),
    }
  }

  private async request(url: string, init: RequestInit): Promise<Response> {
    let response: Response
    try {
      response = await this.doFetch(url, {...init, signal: AbortSignal.timeout(this.timeoutMs)})
    } catch (error) {
      const cause = (error as {cause?: {code?: string}}).cause?.code ?? (error as Error).name
      throw new WandbRequestError(`cannot reach ${new URL(url).origin} (${cause})`, undefined, true)
    }
    if (!response.ok) {
      const text = (await response.text().catch(() => '')).slice(0, 200)
      const transient = response.status >= 500 || response.status === 429 || response.status === 408
      throw new WandbRequestError(`${init.method} ${new URL(url).pathname} -> HTTP ${response.status} ${text}`.trim(), response.status, transient)
    }
    return response
  }
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text()
  try {
    return JSON.parse(text)
  } catch {
    throw new WandbRequestError(`W&B answered with non-JSON (HTTP ${response.status})`, response.status, true)
  }
}

function parseMaybe(value: unknown): Record<string, unknown> {
  if (typeof value === 'string') {
    try {
      return JSON.parse(value) as Record<string, unknown>
    } catch {
      return {}
    }
  }
  return (value as Record<string, unknown>) ?? {}
}

/** W&B stores config as {key: {value, desc}}; the SDK sends it that way too. */
export function wrapConfig(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, {value: v, desc: null}]))
}

export function unwrapConfig(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k, v && typeof v === 'object' && 'value' in v ? (v as {value: unknown}).value : v]),
  )
}

/** The web URL of a run: api.wandb.ai -> wandb.ai; other hosts serve both on one origin. */
export function runUrl(baseUrl: string, entity: string, project: string, id: string): string {
  const url = new URL(baseUrl)
  if (url.hostname.startsWith('api.')) url.hostname = url.hostname.slice(4)
  return `${url.origin}/${encodeURIComponent(entity)}/${encodeURIComponent(project)}/runs/${encodeURIComponent(id)}`
}
