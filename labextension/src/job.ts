/**
 * This server's own Slurm job, shared by the status bar and the panel: fetched once and then every few
 * minutes; the walltime left counts down each second with the local clock from the server's seconds_left.
 */
import { Notification } from '@jupyterlab/apputils';
import { ISignal, Signal } from '@lumino/signaling';

import { IJob, requestAPI } from './api';

/** How often the job is asked for again (ms). */
const REFETCH_MS = 3 * 60 * 1000;

/** The job, its countdown, and the notifications before its end. */
export class JobModel {
  constructor(private readonly notifyMinutes: number[]) {}

  /** Emitted each second while in a job, and after each fetch. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted after each answer of GET api/job. */
  get fetched(): ISignal<this, void> {
    return this._fetched;
  }

  /** The last answer of GET api/job (null before the first). */
  get job(): IJob | null {
    return this._job;
  }

  /** Seconds of walltime left now, or null when unknown. */
  get secondsLeft(): number | null {
    if (this._endsAt === null) {
      return null;
    }
    return Math.max(0, Math.round((this._endsAt - Date.now()) / 1000));
  }

  /** Fetch now and then on a schedule; tick each second. */
  start(): void {
    void this.fetch();
    this._fetchTimer = window.setInterval(() => void this.fetch(), REFETCH_MS);
    this._tickTimer = window.setInterval(() => this.tick(), 1000);
  }

  /** Ask the server for the job again. */
  async fetch(): Promise<void> {
    try {
      const job = await requestAPI<IJob>('job');
      this._job = job;
      this._endsAt =
        job.in_job && typeof job.seconds_left === 'number'
          ? Date.now() + job.seconds_left * 1000
          : null;
      if (!job.in_job) {
        this.stopTicking();
      }
    } catch (error) {
      console.warn('dkrzspawner: GET api/job failed', error);
    }
    this._fetched.emit();
    this.tick();
  }

  private tick(): void {
    const left = this.secondsLeft;
    if (left !== null) {
      this.notify(left);
    }
    this._changed.emit();
  }

  /** One warning when the countdown passes a threshold (the smallest passed, once). */
  private notify(left: number): void {
    const passed = this.notifyMinutes.filter(
      m => left <= m * 60 && !this._notified.has(m)
    );
    if (!passed.length || left <= 0) {
      return;
    }
    passed.forEach(m => this._notified.add(m));
    const minutes = Math.max(1, Math.ceil(left / 60));
    Notification.warning(
      `Your server's Slurm job ends in ${minutes} minute${minutes === 1 ? '' : 's'}; ` +
        'save your notebooks now: unsaved work is lost when it ends.',
      { autoClose: false }
    );
  }

  private stopTicking(): void {
    window.clearInterval(this._tickTimer);
    window.clearInterval(this._fetchTimer);
  }

  private _job: IJob | null = null;
  private _endsAt: number | null = null;
  private _notified = new Set<number>();
  private _fetchTimer = 0;
  private _tickTimer = 0;
  private _changed = new Signal<this, void>(this);
  private _fetched = new Signal<this, void>(this);
}
