package gateway

import "net/http"

func (h *handlers) imageImport(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "import is not implemented yet")
}
