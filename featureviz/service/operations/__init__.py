"""The served operations, one class each (base.py: Operation, the template they share). The
registered model name selects one."""
from .activations import Activations
from .architecture import Filters, Layers
from .image_maps import Deconv, GradCam, Occlusion, Saliency
from .visualize.operation import Visualize

OPERATIONS = {operation.name: operation
              for operation in (Visualize, Activations, Deconv, Saliency, GradCam, Occlusion, Layers, Filters)}
