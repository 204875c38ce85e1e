/**
 * A JupyterLab Dialog that stays open while its accept button's action runs, and stays open when the
 * action refuses (the body then shows why, next to the field), so nothing typed is lost.
 */
import { Dialog } from '@jupyterlab/apputils';

/** The action run on accept: true closes the dialog, false keeps it open. */
export type Submit = () => Promise<boolean>;

/** A Dialog whose accept runs `submit` first. */
export class SubmitDialog<T> extends Dialog<T> {
  constructor(
    options: Partial<Dialog.IOptions<T>>,
    private readonly submit: Submit
  ) {
    super(options);
    this.buttonList = options.buttons ?? [
      Dialog.cancelButton(),
      Dialog.okButton()
    ];
    this.defaultIndex = options.defaultButton ?? this.buttonList.length - 1;
  }

  /** Accept: run the action, and close only when it succeeded; any other button closes at once. */
  resolve(index?: number): void {
    const chosen = index ?? this.defaultIndex;
    const button = this.buttonList[chosen];
    if (!button || !button.accept) {
      super.resolve(index);
      return;
    }
    if (this.busy) {
      return;
    }
    this.busy = true;
    this.addClass('dkrz-mod-busy');
    void this.submit()
      .then(done => {
        if (done) {
          super.resolve(chosen);
        }
      })
      .finally(() => {
        this.busy = false;
        this.removeClass('dkrz-mod-busy');
      });
  }

  private readonly buttonList: ReadonlyArray<Dialog.IButton>;
  private readonly defaultIndex: number;
  private busy = false;
}
