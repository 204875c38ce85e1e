/**
 * "Extend this server": a dialog that asks the hub, through POST api/job/extend, for more walltime for this
 * server's Slurm job. The hub decides (the partition's longest runtime, the site's limit, the account's budget);
 * a refusal is its sentence in the dialog, which stays open; on success the status bar's countdown moves at once.
 */
import { Dialog, Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, sendJSON } from './api';
import { errorSlot, h, showFieldError } from './dom';
import { JobModel } from './job';
import { SubmitDialog } from './submitdialog';

/** What the hub answers to an extension. */
interface IExtended {
  job_id: string;
  time_limit: string;
  end: string;
}

/** The times a user may add, as the home page offers them. */
const CHOICES: [string, string][] = [
  ['00:30:00', '30 minutes'],
  ['01:00:00', '1 hour'],
  ['02:00:00', '2 hours'],
  ['04:00:00', '4 hours']
];

/** The dialog's body: the time to add. */
class ExtendForm extends Widget {
  constructor(jobId: string) {
    super();
    this.addClass('dkrz-extend-dialog');
    const select = h(
      'select',
      { name: 'add', 'aria-label': 'Time to add' },
      ...CHOICES.map(([value, label]) => h('option', { value }, label))
    );
    (select as HTMLSelectElement).value = '01:00:00';
    this.node.append(
      h(
        'form',
        { class: 'dkrz-form', autocomplete: 'off' },
        h('p', {}, `Add walltime to Slurm job ${jobId}, the job this server runs in.`),
        h('label', {}, 'Add ', select),
        errorSlot('add')
      )
    );
  }

  get add(): string {
    return (this.node.querySelector('select[name="add"]') as HTMLSelectElement).value;
  }

  showError(message: string): void {
    showFieldError(this.node, 'add', message);
  }
}

/** Open the dialog for the model's job; true when the job was extended. */
export async function extendJob(model: JobModel): Promise<boolean> {
  const jobId = model.job?.job_id ?? '';
  const body = new ExtendForm(jobId);
  const submit = async (): Promise<boolean> => {
    let extended: IExtended;
    try {
      extended = await sendJSON<IExtended>('job/extend', 'POST', { add: body.add });
    } catch (error) {
      body.showError(error instanceof ApiError ? error.message : (error as Error).message);
      return false;
    }
    await model.fetch();
    Notification.success(
      `Extended: time limit now ${extended.time_limit}; job ${extended.job_id} ends at ${extended.end.replace('T', ' ')}.`,
      { autoClose: 8000 }
    );
    return true;
  };
  const dialog = new SubmitDialog<void>(
    {
      title: 'Extend this server',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Extend' })],
      focusNodeSelector: 'select[name="add"]'
    },
    submit
  );
  dialog.addClass('dkrz-dialog');
  const result = await dialog.launch();
  return result.button.accept;
}
