/* Entry of both blobs: offset 0 of the blob. rdi = args (victim address).
 * Align the stack for the C++ ABI, call blob_main, then trap so ckpt (the
 * tracer) sees the blob has finished. */
	.section .text.entry, "ax"
	.globl __blob_entry
	.type __blob_entry, @function
__blob_entry:
	andq $-16, %rsp
	call blob_main
1:	int3
	jmp 1b
	.section .note.GNU-stack, "", @progbits
