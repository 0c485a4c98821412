"""The tftj trainer: trains one TFTrainingJob's resolved parameters on one worker of the group.

Run as `python -m tftj_trainer --params /etc/tftj/params.yaml`. Imports only tftj.api from tftj.
"""

import os

# Keras 3 model.fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); tf_keras
# works. The switch must be set before anything imports tensorflow, so it lives here, at the
# package's first import, and never overrides an explicit choice of the environment.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
