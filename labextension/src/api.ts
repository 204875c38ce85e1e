/**
 * The client of the server extension's REST API (dkrzspawner/api/..., see the contract in the
 * server extension's docs): one request function and the shapes of its answers.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A refusal or failure of the server extension: its one-sentence message and the field it names. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly field: string | null
  ) {
    super(message);
  }
}

/**
 * Call `dkrzspawner/api/<endpoint>` with JupyterLab's own credentials (token or _xsrf cookie); the JSON
 * body parsed, or null for 204. A non-2xx answer throws an ApiError with the server's message and field.
 */
export async function requestAPI<T>(
  endpoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'dkrzspawner', 'api', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new ApiError(
      (data && data.message) || `${response.status} ${response.statusText}`,
      response.status,
      (data && data.field) || null
    );
  }
  return data as T;
}

/** Send `body` as JSON with `method`. */
export function sendJSON<T>(
  endpoint: string,
  method: string,
  body: unknown
): Promise<T> {
  return requestAPI<T>(endpoint, { method, body: JSON.stringify(body) });
}

/** GET api/config: the parts the site switched on. */
export interface ISiteConfig {
  templates: boolean;
  statusbar: boolean;
  panel: boolean;
  notify_minutes: number[];
}

/** GET api/job: this server's own Slurm job. */
export interface IJob {
  in_job: boolean;
  job_id?: string;
  state?: string;
  partition?: string;
  account?: string;
  node?: string;
  cores?: number;
  memory?: string;
  gpus?: number;
  started?: string;
  ends?: string;
  seconds_left?: number | null;
  /** the hub lets this server's token extend it (POST api/job/extend) */
  extendable?: boolean;
}

/** One kernel allocation of GET api/allocations. */
export interface IAllocation {
  job_id: string;
  state: string;
  reason: string;
  estimated_start: string;
  start_text: string;
  node: string;
  seconds_left: number | null;
  kernels: { id: string; name: string; display_name: string }[];
}

/** One template of GET api/templates. */
export interface ITemplate {
  name: string;
  display_name: string;
  description: string;
  needs_environment: boolean;
  /** the dialog's starting Slurm options (a site's template) */
  options?: Record<string, unknown>;
}

/** A preset of the offer. */
export interface IPreset {
  name: string;
  display_name: string;
  description: string;
  partition: string;
  cores: number[];
  memory_per_core?: string;
  runtime?: string;
  max_runtime?: string;
}

/** A partition of the offer (advanced requests). */
export interface IPartition {
  name: string;
  display_name: string;
  max_nodes?: number;
  max_cores?: number;
  max_memory_mb?: number;
  max_gpus?: number;
  max_runtime?: number | null;
  default_runtime?: string;
}

/** A conda env or virtualenv of the user. */
export interface IEnvironment {
  path: string;
  kind: string;
  name: string;
}

/** GET api/offer: what this user may choose. */
export interface IOffer {
  presets: IPreset[];
  partitions: IPartition[];
  advanced: boolean;
  accounts: string[];
  default_account: string | null;
  reservations: string[];
  modules: string[] | null;
  environments: IEnvironment[];
  errors: string[];
}

/** One of the user's kernels (GET api/kernels). */
export interface IUserKernel {
  name: string;
  display_name: string;
  template: string | null;
  options: Record<string, unknown>;
  environment: string | null;
  slurm: boolean;
}

/** The body of POST api/kernels and PUT api/kernels/<name>. */
export interface IKernelRequest {
  template: string;
  name: string;
  display_name: string;
  options: Record<string, unknown>;
  environment?: string;
}

/** Walltime left as [D-]H:MM:SS, the way Slurm prints it. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  const hms = `${days ? pad(hours) : hours}:${pad(minutes)}:${pad(rest)}`;
  return days ? `${days}-${hms}` : hms;
}
