#include "textflag.h"

// func firstAboveAVX2(x []float32, thr float32) int
TEXT ·firstAboveAVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	ANDQ $~31, CX
	VBROADCASTSS thr+24(FP), Y0
	XORQ AX, AX

loop:
	CMPQ AX, CX
	JAE  done
	// Y1..Y4 = thr < x (ordered: NaN compares false)
	VCMPPS $0x11, (SI)(AX*4), Y0, Y1
	VCMPPS $0x11, 32(SI)(AX*4), Y0, Y2
	VCMPPS $0x11, 64(SI)(AX*4), Y0, Y3
	VCMPPS $0x11, 96(SI)(AX*4), Y0, Y4
	VORPS  Y1, Y2, Y1
	VORPS  Y3, Y4, Y3
	VORPS  Y1, Y3, Y1
	VPTEST Y1, Y1
	JNZ    done
	ADDQ   $32, AX
	JMP    loop

done:
	VZEROUPPER
	MOVQ AX, ret+32(FP)
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
