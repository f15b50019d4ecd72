"""The shared layer under the products (`everything`, `compare`, `distill`) and the web app: the model catalog,
checkpoints and one loader by name, images, drawing, writers, the one prompt type, prompt protocols, metrics,
devices and the Ray map helper. It imports only `mobile_sam` among the project's packages (ARCHITECTURE.md)."""
