/** The status bar item: job id, node and the walltime left, hidden outside a Slurm job. */
import { Widget } from '@lumino/widgets';

import { formatSeconds } from './api';
import { JobModel } from './job';

/** The item's widget (id dkrz-slurm-statusbar). */
export class JobStatus extends Widget {
  constructor(private readonly model: JobModel) {
    super();
    this.id = 'dkrz-slurm-statusbar';
    this.addClass('dkrz-statusbar');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('role', 'status');
    this.hide();
    model.changed.connect(this.render, this);
  }

  private render(): void {
    const job = this.model.job;
    if (!job || !job.in_job) {
      this.hide();
      return;
    }
    const left = this.model.secondsLeft;
    const text = `Slurm job ${job.job_id} on ${job.node || '?'}` +
      (left === null ? '' : ` · ${formatSeconds(left)} left`);
    if (this.node.textContent !== text) {
      this.node.textContent = text;
    }
    this.node.dataset.jobId = job.job_id ?? '';
    this.node.dataset.secondsLeft = left === null ? '' : String(left);
    this.node.title = job.ends ? `Slurm job ${job.job_id} ends at ${job.ends}` : '';
    this.node.setAttribute('aria-label', `Slurm job ${job.job_id}, ${left === null ? 'time unknown' : formatSeconds(left) + ' left'}`);
    this.node.classList.toggle('dkrz-mod-ending', left !== null && left < 15 * 60);
    this.show();
  }
}
