/**
 * The status bar item: job id, node and the walltime left, hidden outside a Slurm job; where the hub lets
 * JupyterLab extend the server (the drop-in `extend`), an "Extend…" button beside it opens the extend dialog.
 */
import { Widget } from '@lumino/widgets';

import { formatSeconds } from './api';
import { h } from './dom';
import { extendJob } from './extenddialog';
import { JobModel } from './job';

/** The item's widget (id dkrz-slurm-statusbar). */
export class JobStatus extends Widget {
  constructor(private readonly model: JobModel) {
    super();
    this.id = 'dkrz-slurm-statusbar';
    this.addClass('dkrz-statusbar');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('role', 'status');
    this.text = h('span', { class: 'dkrz-statusbar-text' });
    this.extend = h(
      'button',
      { class: 'dkrz-statusbar-extend', type: 'button', title: "Add walltime to this server's Slurm job", hidden: true },
      'Extend…'
    );
    this.extend.addEventListener('click', event => {
      event.stopPropagation(); // not the item's own click (the Slurm panel)
      void extendJob(this.model);
    });
    this.node.append(this.text, this.extend);
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
    if (this.text.textContent !== text) {
      this.text.textContent = text;
    }
    this.extend.hidden = !(job.extendable && job.state === 'RUNNING');
    this.node.dataset.jobId = job.job_id ?? '';
    this.node.dataset.secondsLeft = left === null ? '' : String(left);
    this.node.title = job.ends ? `Slurm job ${job.job_id} ends at ${job.ends}` : '';
    this.node.setAttribute('aria-label', `Slurm job ${job.job_id}, ${left === null ? 'time unknown' : formatSeconds(left) + ' left'}`);
    this.node.classList.toggle('dkrz-mod-ending', left !== null && left < 15 * 60);
    this.show();
  }

  private readonly text: HTMLSpanElement;
  private readonly extend: HTMLButtonElement;
}
