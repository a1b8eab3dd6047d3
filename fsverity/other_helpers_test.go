//go:build !linux

package fsverity

import "errors"

func mkfifo(string) error { return errors.ErrUnsupported }
